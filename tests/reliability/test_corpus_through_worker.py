"""Every malformed or hostile corpus message, sent through the real worker, meets its expected outcome;
and the run leaves no customer text in the worker's logs, its metrics or Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
import redis
from aiokafka import AIOKafkaProducer

from loadtest.broker import EmbeddedBroker
from schemas import DeadLetter, EnrichedTicket, Triage, decode_ticket, text_hash
from schemas.validation import DEFAULT_MAX_MESSAGE_BYTES
from tests.reliability.conftest import BACKEND
from tests.reliability.corpus import CORPUS, MARKER, NEAR_LIMIT, NEIGHBOURS, POISON, TRIAGED, BadInput
from tests.reliability.summary import report_line
from tests.reliability.traffic import Reference, Stage, Tap, TapRecord, check_routes
from tests.workers import WorkerProcess, metric_labels

CASES = (*CORPUS, *NEAR_LIMIT)
DEADLETTER_PAYLOAD_BYTES = 64 * 1024
_LABELS_ALLOWED = {
    "topic",
    "category",
    "priority",
    "reason",
    "operation",
    "version",
    "partition",
    "result",
    "le",
    # Faust's own sensors: stream names, its metric names, HTTP status codes of /health and /metrics
    "stream",
    "metric",
    "status_code",
    "table",
}


@dataclass
class CorpusRun:
    """What the worker made of the corpus, plus everything it left behind."""

    stage: Stage
    worker: WorkerProcess
    key_prefix: str
    records: list[TapRecord] = field(default_factory=list)
    metrics: str = ""
    logs: str = ""
    redis_items: dict[bytes, bytes] = field(default_factory=dict)

    def on(self, topic: str) -> list[TapRecord]:
        return [r for r in self.records if r.topic == topic]


def _expected_outputs(cases: tuple[BadInput, ...]) -> tuple[set[str], set[str]]:
    """Ticket ids that must be enriched and payload hashes that must be dead-lettered."""
    valid = {decode_ticket(c.raw).ticket_id for c in cases if c.expected == TRIAGED}
    invalid = {hashlib.sha256(c.raw).hexdigest() for c in cases if c.expected != TRIAGED}
    return valid, invalid


async def _send_and_collect(run: CorpusRun, brokers: str, tap: Tap, cases: tuple[BadInput, ...]) -> None:
    """Send the cases back to back, one key for all (one partition, so they share micro-batches), then read
    the outputs until each has an outcome (right or wrong: the tests judge), or 60 s."""
    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks="all", max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        sent = [await producer.send(run.stage.topics.incoming, case.raw, key=b"corpus") for case in cases]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    ids = {c.name: decode_ticket(c.raw).ticket_id for c in cases if c.expected == TRIAGED}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.worker.running:
        await tap.poll()
        enriched = {
            json.loads(r.value)["ticket_id"] for r in tap.records if r.topic == run.stage.topics.enriched
        }
        dead = {
            DeadLetter.model_validate_json(r.value).payload_sha256
            for r in tap.records
            if r.topic == run.stage.topics.deadletter
        }
        if all(ids.get(c.name) in enriched or hashlib.sha256(c.raw).hexdigest() in dead for c in cases):
            break
    quiet = time.monotonic() + 1.5
    while time.monotonic() < quiet:
        await tap.poll()


@pytest.fixture(scope="module")
def corpus_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, redis_url: str, unique: Callable[[str], str]
) -> Iterator[CorpusRun]:
    """One worker (the real model, the real Redis) fed the whole corpus, then the near-limit tickets, then
    the poison message between valid neighbours (each group in its own micro-batches)."""
    folder = tmp_path_factory.mktemp("corpus")
    stage = Stage(unique("corpus"))
    key_prefix = unique("reltest-corpus")
    with EmbeddedBroker(log_path=folder / "tansu.log") as broker:
        worker = WorkerProcess(
            "corpus",
            {
                "TRIAGE_BROKERS": broker.bootstrap,
                **stage.worker_env(),
                "TRIAGE_MODEL_BACKEND": BACKEND,
                "TRIAGE_MODEL_DIR": str(tiny_checkpoint),
                "TRIAGE_REDIS__URL": redis_url,
                "TRIAGE_REDIS__KEY_PREFIX": key_prefix,
                "TRIAGE_DEADLETTER_PAYLOAD_BYTES": str(DEADLETTER_PAYLOAD_BYTES),
            },
            folder / "corpus.log",
        )
        run = CorpusRun(stage, worker, key_prefix)
        client = redis.Redis.from_url(redis_url)

        async def scenario() -> None:
            await stage.create_topics(broker.bootstrap)
            worker.start()
            await asyncio.to_thread(worker.wait_ready)
            tap = Tap(broker.bootstrap, stage.topics.outputs(), stage.partitions)
            await tap.start()
            try:
                await _send_and_collect(run, broker.bootstrap, tap, CORPUS)
                run.metrics = worker.metrics()
                await _send_and_collect(run, broker.bootstrap, tap, NEAR_LIMIT)
                poisoned = (*NEIGHBOURS[:10], POISON, *NEIGHBOURS[10:])
                await _send_and_collect(run, broker.bootstrap, tap, poisoned)
            finally:
                run.records = tap.records
                await tap.stop()

        try:
            asyncio.run(scenario())
            time.sleep(0.5)  # the cache writes happen in the background, after the batch is published
            keys = list(client.scan_iter(match=f"{key_prefix}*"))
            run.redis_items = {key: cast(bytes, client.get(key) or b"") for key in keys}
            run.logs = worker.output()
            report_line(_summary(run))
            yield run
        finally:
            worker.stop()
            for key in client.scan_iter(match=f"{key_prefix}*"):
                client.delete(key)
            client.close()


def _summary(run: CorpusRun) -> str:
    """The corpus run's line in the scenario table: an outcome is an enriched ticket id or a dead letter."""
    sent = (*CASES, POISON, *NEIGHBOURS)
    enriched = [json.loads(r.value)["ticket_id"] for r in run.on(run.stage.topics.enriched)]
    dead = [
        DeadLetter.model_validate_json(r.value).payload_sha256 for r in run.on(run.stage.topics.deadletter)
    ]
    ids = {c.name: decode_ticket(c.raw).ticket_id for c in sent if c.expected == TRIAGED}
    lost = [
        c for c in sent if ids.get(c.name) not in enriched and hashlib.sha256(c.raw).hexdigest() not in dead
    ]
    as_expected = sum(
        ids.get(c.name) in enriched
        if c.expected == TRIAGED
        else any(letter.error.code == c.expected for letter in _dead_letters_of(run, c.raw))
        for c in sent
    )
    duplicates = len(enriched) - len(set(enriched)) + len(dead) - len(set(dead))
    return (
        f"scenario=corpus sent={len(sent)} enriched={len(set(enriched))} dead={len(set(dead))} "
        f"lost={len(lost)} duplicates={duplicates} as_expected={as_expected}"
    )


def _dead_letters_of(run: CorpusRun, raw: bytes) -> list[DeadLetter]:
    digest = hashlib.sha256(raw).hexdigest()
    letters = [DeadLetter.model_validate_json(r.value) for r in run.on(run.stage.topics.deadletter)]
    return [letter for letter in letters if letter.payload_sha256 == digest]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_corpus_message_meets_its_outcome_through_the_worker(
    corpus_run: CorpusRun, case: BadInput, reference: Reference
) -> None:
    run = corpus_run
    assert len(case.raw) <= DEFAULT_MAX_MESSAGE_BYTES or case.expected != TRIAGED
    if case.expected == TRIAGED:
        sent = decode_ticket(case.raw)
        copies = [
            r for r in run.on(run.stage.topics.enriched) if json.loads(r.value)["ticket_id"] == sent.ticket_id
        ]
        assert copies, (
            f"{case.name} was never enriched (worker alive: {run.worker.running})\n{run.worker.tail(15)}"
        )
        assert len({c.value for c in copies}) == 1
        got = EnrichedTicket.model_validate_json(copies[0].value)
        assert copies[0].key == sent.ticket_id.encode()
        assert got.model_dump(mode="json", exclude={"triage"}) == sent.model_dump(mode="json")
        (want,) = reference([sent.text])
        if (got.triage.category, got.triage.priority, got.triage.intent) != (want.category, want.priority, want.intent):
            # Batch-mates change float rounding, so a label may differ only where two labels tie within that noise.
            assert got.triage.confidence.model_dump() == pytest.approx(want.confidence.model_dump(), abs=1e-3), (
                f"{case.name}: {got.triage} vs {want}"
            )
        assert not _dead_letters_of(run, case.raw), f"{case.name} was also dead-lettered"
    else:
        letters = _dead_letters_of(run, case.raw)
        assert len(letters) >= 1, f"{case.name} was never dead-lettered"
        letter = letters[0]
        assert letter.error.code == case.expected, (
            f"{case.name}: {letter.error.code} ({letter.error.message})"
        )
        assert letter.error.message
        assert letter.source_topic == run.stage.topics.incoming
        assert letter.payload_size == len(case.raw)
        kept = case.raw[:DEADLETTER_PAYLOAD_BYTES]
        assert letter.payload_truncated == (len(kept) < len(case.raw))
        assert letter.raw_payload() == kept, "the dead letter keeps the payload byte-exact (up to the cap)"


def test_a_hostile_message_does_not_take_its_batch_neighbours_down(corpus_run: CorpusRun) -> None:
    run = corpus_run
    enriched = {json.loads(r.value)["ticket_id"] for r in run.on(run.stage.topics.enriched)}
    wrongly_dead = [n.name for n in NEIGHBOURS if _dead_letters_of(run, n.raw)]
    letters = [(letter.error.code, letter.error.message) for letter in _dead_letters_of(run, POISON.raw)]
    assert not wrongly_dead and letters == [(POISON.expected, letters[0][1] if letters else "")], (
        f"{len(wrongly_dead)} valid neighbours dead-lettered with the poison ({wrongly_dead[:3]}...); "
        f"the poison message itself got {letters}"
    )
    assert {decode_ticket(n.raw).ticket_id for n in NEIGHBOURS} <= enriched


def test_the_corpus_produced_nothing_else(corpus_run: CorpusRun) -> None:
    """Exactly one outcome per message, each enriched ticket on exactly its routes."""
    run = corpus_run
    valid, invalid = _expected_outputs((*CASES, POISON, *NEIGHBOURS))
    enriched = {json.loads(r.value)["ticket_id"]: r for r in run.on(run.stage.topics.enriched)}
    dead = [
        DeadLetter.model_validate_json(r.value).payload_sha256 for r in run.on(run.stage.topics.deadletter)
    ]
    assert set(enriched) == valid
    assert sorted(dead) == sorted(invalid), "one dead letter per invalid message, none for valid ones"
    by_topic: dict[str, list[TapRecord]] = defaultdict(list)
    for record in run.records:
        by_topic[record.topic].append(record)
    assert check_routes(by_topic, run.stage.topics, enriched) == []


def test_no_ticket_text_in_the_worker_logs(corpus_run: CorpusRun) -> None:
    logs = corpus_run.logs
    assert "dead_letter" in logs and "worker_starting" in logs, "the logs were captured"
    assert MARKER not in logs
    for case in CASES:
        if case.expected == TRIAGED:
            text = decode_ticket(case.raw).text
            assert text[:40] not in logs, f"text of {case.name} leaked into the logs"


def test_no_ticket_text_in_metrics(corpus_run: CorpusRun) -> None:
    metrics = corpus_run.metrics
    assert "triage_tickets_in_total" in metrics
    assert MARKER not in metrics
    labels = metric_labels(metrics)
    assert {name for sample in labels for name in sample} <= _LABELS_ALLOWED
    assert not [v for sample in labels for v in sample.values() if len(v) > 64], (
        "no free text in label values"
    )


def test_no_ticket_text_in_redis_and_keys_are_hashes(corpus_run: CorpusRun) -> None:
    run = corpus_run
    assert run.redis_items, "the valid corpus tickets were cached"
    tickets = [decode_ticket(c.raw) for c in (*CASES, *NEIGHBOURS) if c.expected == TRIAGED]
    sent = {text_hash(t.text) for t in tickets}
    sent_tickets = {
        hashlib.sha256(f"{t.ticket_id}\0{text_hash(t.text)}".encode()).hexdigest() for t in tickets
    }
    prefix = re.escape(run.key_prefix)
    text_pattern = re.compile(rf"^{prefix}:[^:]+:([0-9a-f]{{64}})$")
    ticket_pattern = re.compile(rf"^{prefix}-ticket:[^:]+:([0-9a-f]{{64}})$")
    kinds = set()
    for key, value in run.redis_items.items():
        text_match, ticket_match = text_pattern.match(key.decode()), ticket_pattern.match(key.decode())
        assert text_match or ticket_match, f"cache key {key!r} is not <prefix>[-ticket]:<version>:<sha256>"
        if text_match:
            assert text_match.group(1) in sent
            kinds.add("text")
        else:
            assert ticket_match and ticket_match.group(1) in sent_tickets
            kinds.add("ticket")
        assert MARKER.encode() not in key + value
        Triage.model_validate_json(value)
    assert kinds == {"text", "ticket"}
