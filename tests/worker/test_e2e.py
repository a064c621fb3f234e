"""End to end through one real worker process: routing, on-call, review, dead letters, cache, batching."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from aiokafka.partitioner import murmur2

from inference.checkpoint import read_manifest, resolve_checkpoint
from loadtest.broker import EmbeddedBroker
from schemas.enums import ErrorCode, Priority
from schemas.messages import DeadLetter
from schemas.taxonomy import load_taxonomy
from schemas.topics import TopicSettings
from tests.worker.kit import (
    PARTITIONS,
    Ticketed,
    banking_texts,
    drop_keys,
    keys_seen,
    produce,
    read_topics,
    ticket,
    topic_partitions,
    topic_settings,
    worker_env,
)
from tests.workers import WorkerProcess


@dataclass
class Running:
    worker: WorkerProcess
    topics: TopicSettings
    bootstrap: str
    key_prefix: str
    version: str
    partitions_at_ready: dict[str, int]


@pytest.fixture(scope="module")
def running(
    broker: EmbeddedBroker,
    redis_url: str,
    tiny_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
    unique: Callable[[str], str],
) -> Iterator[Running]:
    """One worker for the whole module, on topics and a cache prefix of its own."""
    name = unique("e2e")
    topics = topic_settings(name)
    tmp = tmp_path_factory.mktemp("e2e")
    env = worker_env(broker, redis_url, tmp / "state", topics, tiny_checkpoint, name)
    worker = WorkerProcess("worker", env, tmp / "worker.log").start()
    try:
        health = worker.wait_ready()
        partitions = topic_partitions(broker.bootstrap)
        version = str(read_manifest(resolve_checkpoint(tiny_checkpoint))["version"])
        assert health["model_version"] == version
        yield Running(worker, topics, broker.bootstrap, env["TRIAGE_REDIS__KEY_PREFIX"], version, partitions)
    finally:
        worker.stop()
        client = redis.Redis.from_url(redis_url)
        drop_keys(client, env["TRIAGE_REDIS__KEY_PREFIX"])
        client.close()


def all_outputs(topics: TopicSettings) -> list[str]:
    return topics.outputs()


def _settled(out: list[Ticketed], running: Running, wanted: set[bytes]) -> bool:
    """Every wanted ticket enriched, and each of its own route, on-call and review records read too.

    The topics are read together but not in step: stopping at the enriched and category records alone let an
    on-call record still in flight fail the placement checks.
    """
    seen = {(r.topic, r.key) for r in out}
    enriched = [r for r in out if r.topic == running.topics.enriched and r.key in wanted]
    if {r.key for r in enriched} != wanted:
        return False
    for record in enriched:
        triage = record.value["triage"]
        assert isinstance(triage, dict)
        needed = [running.topics.route(triage["category"])]
        needed += [running.topics.oncall] if triage["priority"] == Priority.HIGH.value else []
        needed += [running.topics.review] if triage["needs_review"] else []
        if any((topic, record.key) not in seen for topic in needed):
            return False
    return True


def test_every_ticket_reaches_its_routes_keyed_by_id_with_headers(running: Running, data_dir: Path) -> None:
    texts = banking_texts(data_dir, per_intent=2)
    messages = [ticket(f"route-{i}", text, channel="email", crm_ref=f"C{i}") for i, (_, text) in enumerate(texts)]
    produce(running.bootstrap, running.topics.incoming, messages)
    wanted = {key for key, _ in messages}
    records = read_topics(
        running.bootstrap, all_outputs(running.topics), until=lambda out: _settled(out, running, wanted)
    )
    enriched = {r.key: r for r in records if r.topic == running.topics.enriched and r.key in wanted}
    assert set(enriched) == wanted
    placed = {(r.topic, r.key) for r in records}
    categories, priorities = set(), set()
    for key, record in enriched.items():
        triage = record.value["triage"]
        assert isinstance(triage, dict)
        assert record.value["ticket_id"] == key.decode()
        assert record.value["crm_ref"] == "C" + key.decode().split("-")[1], "unknown fields pass through"
        assert record.headers["model_version"] == running.version.encode() == triage["model_version"].encode()
        assert record.headers["category"] == triage["category"].encode()
        assert record.headers["priority"] == triage["priority"].encode()
        category, priority = triage["category"], Priority(triage["priority"])
        categories.add(category)
        priorities.add(priority)
        assert (running.topics.route(category), key) in placed
        for other in set(load_taxonomy().categories) - {category}:
            assert (running.topics.route(other), key) not in placed
        assert ((running.topics.oncall, key) in placed) == (priority is Priority.HIGH)
        assert ((running.topics.review, key) in placed) == triage["needs_review"]
    for record in records:
        if record.key in wanted:
            expected = (murmur2(record.key) & 0x7FFFFFFF) % PARTITIONS
            assert record.partition == expected, "Kafka's default key partitioner, like every client"
    assert categories == set(load_taxonomy().categories), "the sample covers every routing topic"
    assert Priority.HIGH in priorities, "the sample has High-priority tickets for on-call"


BAD_INPUTS: dict[ErrorCode, bytes | None] = {
    ErrorCode.INVALID_JSON: b'{"ticket_id": "bad-invalid_json", "text": ',
    ErrorCode.INVALID_UTF8: b'{"ticket_id": "bad-invalid_utf8", "text": "caf\xe9 \xff"}',
    ErrorCode.MISSING_FIELD: b'{"ticket_id": "bad-missing_field"}',
    ErrorCode.EMPTY_TEXT: json.dumps({"ticket_id": "bad-empty_text", "text": " \u0000\t "}).encode(),
    ErrorCode.TEXT_TOO_LONG: json.dumps({"ticket_id": "bad-text_too_long", "text": "card " * 2001}).encode(),
    ErrorCode.INVALID_FIELD: b'{"ticket_id": "bad-invalid_field", "text": 42}',
    ErrorCode.NOT_AN_OBJECT: b'["bad-not_an_object", "my card is lost"]',
    ErrorCode.DUPLICATE_KEY: b'{"ticket_id": "bad-duplicate_key", "text": "a", "text": "b"}',
    ErrorCode.TOO_DEEPLY_NESTED: b'{"ticket_id": "bad-too_deeply_nested", "text": "x", "m": ' + b"[" * 64 + b"]" * 64
    + b"}",
    ErrorCode.MESSAGE_TOO_LARGE: b'{"ticket_id": "bad-message_too_large", "text": "' + b"x" * (2 * 1024 * 1024)
    + b'"}',
    ErrorCode.EMPTY_MESSAGE: None,
}


def test_every_bad_input_is_dead_lettered_with_its_reason_and_the_worker_goes_on(running: Running) -> None:
    messages = [(f"bad-{code.value}".encode(), raw) for code, raw in BAD_INPUTS.items()]
    messages.append(ticket("after-bad", "I still have not received my new card"))
    produce(running.bootstrap, running.topics.incoming, messages)
    wanted = {key for key, _ in messages[:-1]}
    records = read_topics(
        running.bootstrap, [running.topics.deadletter, running.topics.enriched],
        until=lambda out: wanted <= keys_seen(out, running.topics.deadletter)
        and b"after-bad" in keys_seen(out, running.topics.enriched),
    )
    letters = {r.key: r for r in records if r.topic == running.topics.deadletter}
    assert wanted <= set(letters)
    for code, raw in BAD_INPUTS.items():
        record = letters[f"bad-{code.value}".encode()]
        letter = DeadLetter.model_validate(record.value)
        assert letter.error.code is code, (code, letter.error)
        assert record.headers["error_code"] == code.value.encode()
        assert letter.source_topic == running.topics.incoming
        data = raw or b""
        assert letter.payload_size == len(data)
        assert letter.payload_sha256 == hashlib.sha256(data).hexdigest()
        if letter.payload_truncated:
            assert code is ErrorCode.MESSAGE_TOO_LARGE
            assert data.startswith(letter.raw_payload())
        else:
            assert letter.raw_payload() == data
        assert running.worker.metric("triage_dead_letters_total", reason=code.value) >= 1
    assert keys_seen(records, running.topics.enriched) >= {b"after-bad"}


def test_a_repeated_text_is_answered_from_redis_by_hash_only(running: Running, unique: Callable[[str], str]) -> None:
    text = f"My card payment was declined at {unique('the shop')}"
    produce(running.bootstrap, running.topics.incoming, [ticket("cache-1", text)])
    first = read_topics(
        running.bootstrap, [running.topics.enriched], until=lambda out: b"cache-1" in keys_seen(out)
    )
    produce(running.bootstrap, running.topics.incoming, [ticket("cache-2", f"  {text}\u0000 ")])
    both = read_topics(
        running.bootstrap, [running.topics.enriched], until=lambda out: b"cache-2" in keys_seen(out)
    )
    one = next(r.value["triage"] for r in first if r.key == b"cache-1")
    two = next(r.value["triage"] for r in both if r.key == b"cache-2")
    assert isinstance(one, dict) and isinstance(two, dict)
    assert one["cached"] is False and two["cached"] is True
    assert {k: one[k] for k in ("category", "priority", "intent", "model_version")} == {
        k: two[k] for k in ("category", "priority", "intent", "model_version")
    }
    client = redis.Redis.from_url(running.worker.env["TRIAGE_REDIS__URL"])
    try:
        key = f"{running.key_prefix}:{running.version}:{hashlib.sha256(text.encode()).hexdigest()}"
        value = client.get(key)
        assert value is not None and 0 < client.ttl(key) <= 86_400
        assert text.encode() not in value and b'"text"' not in value
        stored = [*client.scan_iter(f"{running.key_prefix}:*"), *client.scan_iter(f"{running.key_prefix}-ticket:*")]
        values = [client.get(key) or b"" for key in stored]
        assert len(values) >= 2 and all(text.encode() not in v and b"declined at" not in v for v in values)
    finally:
        client.close()
    assert running.worker.metric("triage_cache_hits_total") >= 1


def test_a_burst_is_micro_batched_and_a_lone_ticket_gets_a_batch_of_its_own(running: Running) -> None:
    """How long the lone ticket takes is a benchmark's to measure (``loadtest``), not a threshold here."""
    batches_before = running.worker.metric("triage_batch_size_count")
    tickets_before = running.worker.metric("triage_batch_size_sum")
    burst = [ticket(f"burst-{i}", f"How do I top up by card? ref {i}") for i in range(300)]
    produce(running.bootstrap, running.topics.incoming, burst)
    wanted = {key for key, _ in burst}
    read_topics(running.bootstrap, [running.topics.enriched], until=lambda out: wanted <= keys_seen(out))
    batches = running.worker.metric("triage_batch_size_count") - batches_before
    assert running.worker.metric("triage_batch_size_sum") - tickets_before == 300
    assert batches <= 300 / 4, f"300 tickets in {batches} batches: not batched"
    (sent,) = produce(running.bootstrap, running.topics.incoming, [ticket("lone", "Where is my card?")])
    out = read_topics(running.bootstrap, [running.topics.enriched], until=lambda out: b"lone" in keys_seen(out))
    (enriched,) = [r for r in out if r.key == b"lone"]
    assert running.worker.metric("triage_batch_size_count") - batches_before == batches + 1, "a batch of its own"
    assert enriched.timestamp_ms >= sent.timestamp, "its enriched record was produced after it"


def test_ready_only_once_every_output_topic_exists_with_its_partitions(running: Running) -> None:
    """A consumer of an output topic started on readiness must find it: one that finds nothing may make the broker
    auto-create it with its default partition count, and the worker would then key tickets onto partitions that
    consumer does not read."""
    outputs = all_outputs(running.topics)
    assert {name: running.partitions_at_ready.get(name) for name in outputs} == dict.fromkeys(outputs, PARTITIONS)


def test_health_metrics_and_logs(running: Running, unique: Callable[[str], str]) -> None:
    secret = f"my account number is {unique('12345678')}"
    produce(running.bootstrap, running.topics.incoming, [ticket("log-1", secret)])
    read_topics(running.bootstrap, [running.topics.enriched], until=lambda out: b"log-1" in keys_seen(out))
    status, body = running.worker.get("/health")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ready" and health["kafka_reachable"] is True
    _, metrics = running.worker.get("/metrics")
    for name in (
        "triage_tickets_in_total",
        "triage_records_out_total",
        "triage_batch_size_bucket",
        "triage_inference_seconds_bucket",
        "triage_end_to_end_seconds_bucket",
        "triage_cache_hit_ratio",
        "triage_cache_available",
        "faust_topic_partition_end_offset",
        "faust_messages_received_total",
        f'triage_model_info{{version="{running.version}"}} 1.0',
    ):
        assert name in metrics, name
    assert running.worker.metric("triage_records_out_total", topic=running.topics.enriched) >= 1
    assert running.worker.metric("triage_tickets_in_total", topic=running.topics.incoming) >= 1
    log = running.worker.output()
    assert secret not in log and "12345678" not in log
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "model_loaded" for e in events)
