"""Publish a batch's records as one Kafka record batch per topic-partition: a few futures, not thousands.

Partitions come from Kafka's default key partitioner (murmur2 of ``ticket_id``, like every Kafka client),
so all records of a ticket land on one partition per topic, in the order they were built. A ticket's key
is hashed once per batch, not once per destination topic (aiokafka's murmur2 is pure Python).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, cast

import faust
from aiokafka.partitioner import murmur2

from worker.records import OutRecord

__all__ = ["BatchPublisher"]


class BatchPublisher:
    """Wraps the Faust app's aiokafka producer (``acks=all``) for batch sends."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._known: set[str] = set()

    def _producer(self) -> Any:
        """The aiokafka producer inside Faust's (batch sends are not part of Faust's producer API)."""
        return self.app.producer._ensure_producer()  # type: ignore[attr-defined]

    async def wait_for_topics(self, topics: Iterable[str]) -> None:
        """Load partition metadata of the output topics once, before the first batch is routed."""
        producer = self._producer()
        for topic in topics:
            await producer.partitions_for(topic)
            self._known.add(topic)

    async def send(self, records: Sequence[OutRecord]) -> list[asyncio.Future[object]]:
        """Queue every record; returns one future per record batch, resolved when the broker acked it."""
        producer = self._producer()
        key_partition = self.app.producer.key_partition
        partitions: dict[str, list[int]] = {}
        hashes: dict[bytes, int] = {}
        grouped: dict[tuple[str, int], list[OutRecord]] = {}
        for record in records:
            if record.topic not in self._known:
                await self.wait_for_topics([record.topic])
            if record.key is None:  # dead letter of an unreadable message: a random partition
                partition = key_partition(record.topic, cast(bytes, record.key)).partition
            else:
                if record.topic not in partitions:
                    partitions[record.topic] = sorted(await producer.partitions_for(record.topic))
                if record.key not in hashes:
                    hashes[record.key] = murmur2(record.key) & 0x7FFFFFFF
                available = partitions[record.topic]
                partition = available[hashes[record.key] % len(available)]
            grouped.setdefault((record.topic, partition), []).append(record)
        futures: list[asyncio.Future[object]] = []
        for (topic, partition), group in grouped.items():
            batch = producer.create_batch()
            for record in group:
                if batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers)
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
