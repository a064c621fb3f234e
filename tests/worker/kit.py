"""Worker test kit: worker settings on the session broker and real Redis, aiokafka writers and readers."""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from inference.environment import flatten_env
from loadtest.broker import EmbeddedBroker
from schemas.messages import Triage
from schemas.topics import TopicSettings
from worker.model import Engine, ModelFailed, Predictor

PARTITIONS = 3


class InProcess:
    """The pipeline's view of ``ModelClient`` (its engine and ``predict``) over a predictor in this process."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.engine = SimpleNamespace(version=predictor.version)

    @contextmanager
    def serving(self) -> Iterator[Engine]:
        yield cast(Engine, self.engine)

    async def predict(self, engine: Engine, texts: Sequence[str], alone: bool = False) -> list[Triage]:
        try:
            return self.predictor.predict(texts)
        except Exception as exc:
            raise ModelFailed(f"{type(exc).__name__}: {exc}") from exc


def topic_settings(name: str) -> TopicSettings:
    """Topics under ``name`` (a ``unique`` one), private to one test or module: no crosstalk on the shared broker."""
    return TopicSettings.namespaced(name, partitions=PARTITIONS)


def worker_env(
    broker: EmbeddedBroker,
    redis_url: str,
    state_dir: Path,
    topics: TopicSettings,
    model_dir: Path,
    name: str,
    **overrides: str,
) -> dict[str, str]:
    """Settings of one worker process: everything through ``TRIAGE_*`` like in production.

    ``name`` (a ``unique`` one) is its Redis key prefix and names its consumer group.
    """
    return {
        **flatten_env(
            {
                "brokers": broker.bootstrap,
                "group_id": f"{name}-group",
                "topics": topics.model_dump(),
                "model_dir": model_dir,
                "redis": {"url": redis_url, "key_prefix": name, "timeout_ms": 2000},
                "state_dir": state_dir,
            }
        ),
        **overrides,
    }


@dataclass(frozen=True)
class Ticketed:
    """A consumed output record with its value parsed."""

    topic: str
    key: bytes | None
    value: dict[str, object]
    headers: dict[str, bytes]
    raw: bytes
    partition: int = 0
    timestamp_ms: int = 0


def produce(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]
) -> list[RecordMetadata]:
    """Send messages in order (one partition per key), waiting for the broker's acks; their metadata."""

    async def run() -> list[RecordMetadata]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 * 1024 * 1024, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key) for key, value in messages]
            return list(await asyncio.gather(*futures))
        finally:
            await producer.stop()

    return asyncio.run(run())


def read_topics(
    bootstrap: str,
    topics: Sequence[str],
    until: Callable[[list[Ticketed]], bool],
    timeout: float = 60.0,
) -> list[Ticketed]:
    """Everything on ``topics`` from the beginning, read until ``until(records)`` holds or the timeout.

    When the timeout passes first, a second consumer reads everything again from the beginning: what the
    broker holds is then the answer, not one consumer's view (once, under a loaded CI run, a record on an
    output topic never reached a reader that had assigned its partition before the worker wrote to it).
    """
    records = _read(bootstrap, topics, until, timeout)
    if until(records):
        return records
    again = _read(bootstrap, topics, until, 10.0)
    print(f"read_topics: condition unmet after {timeout} s with {len(records)} records; re-read found {len(again)}")
    return again


def _read(
    bootstrap: str, topics: Sequence[str], until: Callable[[list[Ticketed]], bool], timeout: float
) -> list[Ticketed]:
    async def run() -> list[Ticketed]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        out: list[Ticketed] = []
        try:
            tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + timeout
            while not until(out) and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    out.extend(_parse(r) for r in records)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def _parse(record: ConsumerRecord) -> Ticketed:
    raw = record.value or b""
    return Ticketed(
        record.topic, record.key, json.loads(raw), dict(record.headers), raw, record.partition, record.timestamp
    )


def topic_partitions(bootstrap: str) -> dict[str, int]:
    """Every topic the broker holds and its partition count, read without creating any (a consumer's metadata
    request may auto-create a topic with the broker's default partition count)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="triage-test-admin")
    try:
        return {topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics()}
    finally:
        admin.close()


def keys_seen(records: Sequence[Ticketed], topic: str | None = None) -> set[bytes]:
    return {r.key for r in records if r.key is not None and (topic is None or r.topic == topic)}


def ticket(ticket_id: str, text: str, **extra: object) -> tuple[bytes, bytes]:
    return ticket_id.encode(), json.dumps({"ticket_id": ticket_id, "text": text, **extra}).encode()


def banking_texts(data_dir: Path, per_intent: int) -> list[tuple[str, str]]:
    """(intent, text) pairs, ``per_intent`` for each Banking77 intent, from the training split."""
    chosen: dict[str, list[str]] = {}
    with (data_dir / "train.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            texts = chosen.setdefault(row["category"], [])
            if len(texts) < per_intent:
                texts.append(row["text"])
    return [(intent, text) for intent, texts in sorted(chosen.items()) for text in texts]


def drop_keys(client: redis.Redis, prefix: str) -> None:
    """Delete a worker's cache entries: by text (``prefix:``) and by ticket (``prefix-ticket:``)."""
    keys = [*client.scan_iter(f"{prefix}:*"), *client.scan_iter(f"{prefix}-ticket:*")]
    if keys:
        client.delete(*keys)
