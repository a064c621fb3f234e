"""Publish a batch's records as one Kafka record batch per topic-partition: a few futures, not thousands.

Partitions come from Kafka's default key partitioner (murmur2 of ``ticket_id``, like every Kafka client),
so all records of a ticket land on one partition per topic, in the order they were built. A ticket's key
is hashed once per batch, not once per destination topic (aiokafka's murmur2 is pure Python).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
import structlog
from aiokafka import errors
from aiokafka.client import ConnectionGroup
from aiokafka.partitioner import murmur2
from aiokafka.protocol.admin import DescribeConfigsRequest

from schemas.topics import TopicSettings
from worker.records import OutRecord

__all__ = ["REFUSED_RECORD", "TOO_LARGE", "BatchPublisher", "Sent", "ensure_output_topics", "smallest_topic_limit"]

log = structlog.get_logger(__name__)

# Errors that refuse one record batch for what is in it (not retriable): the worker resends the batch's records
# one by one, and a record still refused alone costs its ticket a dead letter. aiokafka raises UnknownError for a
# code it does not know, e.g. INVALID_RECORD (87, a broker-side record validation); one that is the broker's
# state, not the record's, refuses the dead letter too, and the worker stops unacknowledged.
TOO_LARGE = (errors.MessageSizeTooLargeError, errors.RecordListTooLargeError, errors.RecordTooLargeError)
REFUSED_RECORD = (*TOO_LARGE, errors.CorruptRecordException, errors.InvalidTimestampError, errors.UnknownError)
_MAX_MESSAGE_BYTES = "max.message.bytes"  # the topic setting the broker holds record batches to


@dataclass(frozen=True)
class Sent:
    """One record batch on its way: resolved when the broker acknowledged it (``acks=all``)."""

    future: asyncio.Future[object]
    records: list[OutRecord]


async def ensure_output_topics(app: faust.App, topics: TopicSettings, categories: Iterable[str]) -> None:
    """Create missing output topics, one route per category of the served checkpoint, through Faust's producer
    (so SSL/SASL settings apply); the agent declares the incoming topic ``internal``, so Faust creates it."""
    await app.producer.maybe_start()
    names = topics.outputs(categories)
    for name in names:
        await app.producer.create_topic(name, topics.partitions, topics.replication_factor)
    log.info("topics_ready", topics=names, partitions=topics.partitions)


async def smallest_topic_limit(app: faust.App, names: Sequence[str]) -> int | None:
    """The smallest ``max.message.bytes`` the broker states for ``names`` (None: it does not say). A ticket's records
    share one value, so checking it against this before sending never lands a ticket on ``enriched`` and then has a
    route refuse it. Own connection: a broker without DescribeConfigs (Tansu) drops it, and must not drop produce."""
    await app.producer.maybe_start()
    client = app.producer._ensure_producer().client  # type: ignore[attr-defined]
    request = DescribeConfigsRequest([(2, name, [_MAX_MESSAGE_BYTES]) for name in names])  # 2: a topic
    try:
        response = await asyncio.wait_for(
            client.send(client.get_random_node(), request, group=ConnectionGroup.COORDINATION), 10)
    except (errors.KafkaError, OSError) as exc:  # OSError: a timeout too
        log.warning("topic_limits_unknown", error=type(exc).__name__)
        return None
    limits = [int(entry[1]) for error, *_, entries in response.resources if not error
              for entry in entries if entry[0] == _MAX_MESSAGE_BYTES and entry[1]]
    return min(limits, default=None)


class BatchPublisher:
    """Wraps the Faust app's aiokafka producer (``acks=all``) for batch sends."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._partitions: dict[str, list[int]] = {}

    def _producer(self) -> Any:
        """The aiokafka producer inside Faust's (batch sends are not part of Faust's producer API)."""
        return self.app.producer._ensure_producer()  # type: ignore[attr-defined]

    async def wait_for_topics(self, topics: Iterable[str]) -> None:
        """Load partition metadata of the output topics once, before the first batch is routed."""
        producer = self._producer()
        for topic in topics:
            self._partitions[topic] = sorted(await producer.partitions_for(topic))

    async def send(self, records: Sequence[OutRecord]) -> list[Sent]:
        """Queue every record, grouped by topic-partition in the order given."""
        producer = self._producer()
        key_partition = self.app.producer.key_partition
        hashes: dict[bytes, int] = {}
        grouped: dict[tuple[str, int], list[OutRecord]] = {}
        for record in records:
            if record.topic not in self._partitions:
                await self.wait_for_topics([record.topic])
            if record.key is None:  # dead letter of an unreadable message: a random partition
                partition = key_partition(record.topic, cast(bytes, record.key)).partition
            else:
                if record.key not in hashes:
                    hashes[record.key] = murmur2(record.key) & 0x7FFFFFFF
                available = self._partitions[record.topic]
                partition = available[hashes[record.key] % len(available)]
            grouped.setdefault((record.topic, partition), []).append(record)
        sent: list[Sent] = []
        for (topic, partition), group in grouped.items():
            batch, members = producer.create_batch(), list[OutRecord]()
            for record in group:
                if batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers) is None:
                    sent.append(Sent(await producer.send_batch(batch, topic, partition=partition), members))
                    batch, members = producer.create_batch(), []
                    batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers)
                members.append(record)
            sent.append(Sent(await producer.send_batch(batch, topic, partition=partition), members))
        return sent
