"""Two worker processes in one consumer group split a 4-partition input topic, as `--scale worker=2` does.

Real processes (``python -m worker``), the real broker, real Redis and the session's tiny checkpoint.
Both workers must be healthy and the group stable before any ticket is produced, so no rebalance falls
inside the run: then every ticket is triaged exactly once, by the worker owning its partition.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from kafka import KafkaConsumer, KafkaProducer

from inference.environment import flatten_env
from loadtest.broker import EmbeddedBroker, create_topics
from schemas.topics import TopicSettings
from tests.workers import WorkerProcess, consumer_lag

WORKERS = 2
PARTITIONS = 4
TICKETS = 400
START_TIMEOUT_S = 75.0
DRAIN_TIMEOUT_S = 60.0


def _topics(unique: Callable[[str], str]) -> TopicSettings:
    return TopicSettings.namespaced(unique("scale"), partitions=PARTITIONS, create=False)


def _create_topics(broker: EmbeddedBroker, topics: TopicSettings) -> None:
    """As topic-init does in compose: the input with 4 partitions, every output, before any worker."""
    create_topics(broker.bootstrap, {topics.incoming: PARTITIONS} | {name: 1 for name in topics.outputs()})


def _worker_env(
    broker: EmbeddedBroker, topics: TopicSettings, group: str, model: Path, redis_url: str
) -> dict[str, str]:
    return flatten_env(
        {
            "brokers": broker.bootstrap,
            "group_id": group,
            "model_dir": model,
            "redis": {"url": redis_url, "key_prefix": group},
            "topics": topics.model_dump(),
        }
    )


async def _group_state(bootstrap: str, group: str) -> tuple[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        _error, _group, state, _ptype, _protocol, members = response.groups[0]
        return state, len(members)
    finally:
        await admin.close()


def _wait_until_ready(workers: list[WorkerProcess], bootstrap: str, group: str) -> None:
    """Every worker healthy and the group stable with all of them: the assignment is final."""
    deadline = time.monotonic() + START_TIMEOUT_S
    state, members = "", 0
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.running, f"worker exited early:\n{worker.tail()}"
        if all(worker.get("/health")[0] == 200 for worker in workers):
            state, members = asyncio.run(_group_state(bootstrap, group))
            if state == "Stable" and members == len(workers):
                return
        time.sleep(0.5)
    logs = "\n---\n".join(worker.tail() for worker in workers)
    pytest.fail(f"workers not ready in {START_TIMEOUT_S}s (group {state!r}, {members} members):\n{logs}")


@pytest.fixture
def scaled_workers(
    broker: EmbeddedBroker,
    tiny_checkpoint: Path,
    redis_url: str,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> Iterator[tuple[list[WorkerProcess], TopicSettings]]:
    topics = _topics(unique)
    group = unique("scale-group")
    _create_topics(broker, topics)
    env = _worker_env(broker, topics, group, tiny_checkpoint, redis_url)
    workers = [WorkerProcess(f"worker-{index}", env, tmp_path / f"worker-{index}.log") for index in range(WORKERS)]
    try:
        for worker in workers:
            worker.start()
        _wait_until_ready(workers, broker.bootstrap, group)
        yield workers, topics
    finally:
        for worker in workers:
            worker.stop()


def _tickets(data_dir: Path, unique: Callable[[str], str]) -> list[tuple[str, str]]:
    with (data_dir / "test.csv").open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for _, row in zip(range(TICKETS), csv.DictReader(handle), strict=False)]
    token = unique("t")
    return [(f"{token}-{n}", text) for n, text in enumerate(texts)]


def _consume_enriched(bootstrap: str, topic: str, expected: int) -> tuple[Counter[str], set[str], float]:
    """Ticket ids seen on the enriched topic (with counts), model versions, and when the last arrived."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    seen: Counter[str] = Counter()
    versions: set[str] = set()
    last = time.perf_counter()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    try:
        while sum(seen.values()) < expected and time.monotonic() < deadline:
            for message in consumer:
                enriched = json.loads(message.value)
                seen[enriched["ticket_id"]] += 1
                versions.add(enriched["triage"]["model_version"])
                last = time.perf_counter()
        # Anything triaged twice would arrive right behind the first copy: keep listening briefly.
        for message in consumer:
            seen[json.loads(message.value)["ticket_id"]] += 1
    finally:
        consumer.close()
    return seen, versions, last


def test_two_workers_share_the_partitions_and_triage_each_ticket_once(
    scaled_workers: tuple[list[WorkerProcess], TopicSettings],
    broker: EmbeddedBroker,
    data_dir: Path,
    unique: Callable[[str], str],
    record_property: Callable[[str, object], None],
) -> None:
    workers, topics = scaled_workers
    tickets = _tickets(data_dir, unique)

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, acks="all")
    started = time.perf_counter()
    try:
        for ticket_id, text in tickets:
            value = json.dumps({"ticket_id": ticket_id, "text": text}).encode()
            producer.send(topics.incoming, key=ticket_id.encode(), value=value)
        producer.flush()
    finally:
        producer.close()
    seen, versions, finished = _consume_enriched(broker.bootstrap, topics.enriched, len(tickets))

    sent = {ticket_id for ticket_id, _ in tickets}
    assert set(seen) == sent, f"{len(sent - set(seen))} tickets never enriched"
    assert [t for t, n in seen.items() if n > 1] == [], "tickets triaged twice without a rebalance"
    assert len(versions) == 1 and "noop" not in versions, "served by the real checkpoint"

    owned: list[set[str]] = []
    consumed: list[float] = []
    for worker in workers:
        assert worker.running, f"a worker died during the run:\n{worker.tail()}"
        lag = consumer_lag(worker.metrics())
        owned.append({str(partition) for topic, partition in lag if topic == topics.incoming})
        consumed.append(worker.metric("triage_tickets_in_total", topic=topics.incoming))
    assert all(owned), f"every worker owns partitions: {owned}"
    assert set.intersection(*owned) == set(), f"a partition is owned twice: {owned}"
    assert set.union(*owned) == {str(p) for p in range(PARTITIONS)}
    assert all(count > 0 for count in consumed), f"both workers triage tickets: {consumed}"
    assert sum(consumed) == len(tickets), f"consumed {consumed}, sent {len(tickets)}"

    rate = len(tickets) / (finished - started)
    record_property("tickets_per_s", round(rate, 1))
    print(f"scale-out: {WORKERS} workers, {len(tickets)} tickets, {rate:.1f} tickets/s, split {consumed}")
