"""At-least-once delivery: SIGKILL mid-stream loses nothing; SIGTERM finishes, commits and exits 0 (or 70 when the
grace period runs out)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from loadtest.broker import EmbeddedBroker
from tests.worker.kit import (
    PARTITIONS,
    Ticketed,
    keys_seen,
    produce,
    read_topics,
    ticket,
    topic_settings,
    worker_env,
)
from tests.workers import WorkerProcess
from worker.runner import EXIT_GRACE_EXPIRED

TICKETS = 600


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Sum over partitions of the group's committed offsets (= records committed, offsets start at 0).

    Tansu's ListOffsets does not report record offsets, so log end offsets cannot be compared here.
    """

    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            return sum([await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)])
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_sigkill_mid_stream_then_restart_loses_no_ticket(
    broker: EmbeddedBroker, redis_url: str, tiny_checkpoint: Path, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    name = unique("sigkill")
    topics = topic_settings(name)
    env = worker_env(
        broker, redis_url, tmp_path / "state", topics, tiny_checkpoint, name,
        TRIAGE_BATCH_SIZE="16", TRIAGE_COMMIT_INTERVAL_S="0.5", TRIAGE_REDIS__ENABLED="false",
        # Without Redis, a duplicate keeps its labels only in fp32: int8 ONNX scales activations per batch, so a
        # text's probabilities move with its batch-mates and a near-tie can flip (README, Delivery guarantee).
        TRIAGE_MODEL_BACKEND="onnx",
    )
    first = WorkerProcess("first", env, tmp_path / "first.log").start()
    second = WorkerProcess("second", env, tmp_path / "second.log")
    try:
        first.wait_ready()
        messages = [ticket(f"k-{i}", f"My transfer number {i} has not arrived yet") for i in range(TICKETS)]
        produce(broker.bootstrap, topics.incoming, messages)
        while first.metric("triage_records_out_total", topic=topics.enriched) < 60:
            assert first.running
            time.sleep(0.02)
        first.signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
        done_before_kill = keys_seen(read_topics(broker.bootstrap, [topics.enriched], until=lambda o: False, timeout=2))
        assert 0 < len(done_before_kill) < TICKETS, "the kill landed mid-stream"

        second.start().wait_ready()
        wanted = {key for key, _ in messages}
        out = read_topics(
            broker.bootstrap, [topics.enriched, topics.deadletter],
            until=lambda o: wanted <= keys_seen(o), timeout=180,
        )
        assert wanted <= keys_seen(out, topics.enriched), f"lost: {sorted(wanted - keys_seen(out))[:10]}"
        copies: dict[bytes | None, list[Ticketed]] = defaultdict(list)
        for record in out:
            copies[record.key].append(record)
        for key, same in copies.items():
            labels = {(r.value["triage"]["category"], r.value["triage"]["intent"]) for r in same}  # type: ignore[index]
            assert len(labels) == 1, f"duplicates of {key!r} differ: {labels}"

        second.signal(signal.SIGTERM)
        assert second.wait(60) == 0
        committed = committed_total(broker.bootstrap, env["TRIAGE_GROUP_ID"], topics.incoming)
        assert committed == TICKETS, "SIGTERM commits every published ticket"
    finally:
        first.stop()
        second.stop()


def test_sigterm_past_the_grace_period_exits_with_70(
    broker: EmbeddedBroker, redis_url: str, tiny_checkpoint: Path, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Deterministic: Faust's own shutdown always sleeps 1 s (mode's sentinel task), five times this grace."""
    name = unique("grace")
    env = worker_env(
        broker, redis_url, tmp_path / "state", topic_settings(name), tiny_checkpoint, name,
        TRIAGE_SHUTDOWN_GRACE_S="0.2",
    )
    worker = WorkerProcess("worker", env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        worker.signal(signal.SIGTERM)
        assert worker.wait(60) == EXIT_GRACE_EXPIRED
        assert "shutdown_grace_expired" in worker.output()
    finally:
        worker.stop()
