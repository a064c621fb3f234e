"""Consume every output topic and match what comes back to what the replay sent.

It needs only topic names and the message schemas. Partitions are assigned by hand (no consumer group, nothing
committed): topics that exist at start are read from their end, topics the worker creates later from the beginning.
Unmatched or unreadable records count only when written after the collector started (some brokers, Tansu
included, report an end offset short of the last batch, so a little backlog can be read).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Literal

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from loadtest.ledger import Ledger
from schemas.messages import DeadLetter, EnrichedTicket
from schemas.topics import TopicSettings

__all__ = ["Collector"]

log = structlog.get_logger(__name__)

_MAX_SCHEMA_SAMPLES = 5


class Collector:
    """Reads the worker's outputs into a ``Ledger``; counts foreign and invalid records. ``clock="record"`` times
    outputs by their Kafka timestamp instead of when they were read, for runs that read them after the worker is done.
    """

    def __init__(
        self, brokers: list[str], topics: TopicSettings, ledger: Ledger, topic_refresh_s: float = 1.0,
        clock: Literal["received", "record"] = "received",
    ) -> None:
        self.brokers, self.topics, self.ledger = brokers, topics, ledger
        self.topic_refresh_s, self.clock = topic_refresh_s, clock
        self.foreign = 0  # records that match nothing sent
        self.schema_errors = 0
        self.schema_samples: list[str] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._missing = set(topics.outputs(()))  # the routes are found by prefix: the served taxonomy's
        self._next_refresh = 0.0
        self._started_ms = 0

    @property
    def topics_read(self) -> list[str]:
        """Every output topic the collector reads, routes included."""
        return sorted({tp.topic for tp in self._positions})

    async def start(self) -> None:
        """Connect and position on every output topic that exists; must finish before the replay sends."""
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.brokers, client_id="triage-collector",
                                          enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=20)
        await self._consumer.start()
        await self._assign_new_topics(first=True)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _assign_new_topics(self, first: bool = False) -> None:
        assert self._consumer is not None
        self._started_ms = self._started_ms or int(time.time() * 1000)
        fresh: list[TopicPartition] = []
        existing = await self._consumer.topics()
        routes = {t for t in existing if t.startswith(self.topics.route_prefix)} - set(self.topics_read)
        for topic in sorted((self._missing | routes) & existing):
            if not self._consumer.partitions_for_topic(topic):
                # Listing topics does not refresh the consumer's own metadata; aiokafka has no public way
                # to ask for one topic's partitions without subscribing (which needs a group).
                await self._consumer._client.add_topic(topic)
            fresh += [TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic) or ())]
        if not fresh:
            return
        self._positions.update(await self._consumer.end_offsets(fresh) if first else dict.fromkeys(fresh, 0))
        appeared = sorted({tp.topic for tp in fresh})
        self._missing.difference_update(appeared)
        self._consumer.assign(list(self._positions))
        for tp, offset in self._positions.items():
            self._consumer.seek(tp, offset)
        log.info("collector_assigned", topics=appeared, partitions=len(fresh), from_end=first)

    async def poll(self, timeout_ms: int = 200) -> int:
        assert self._consumer is not None
        now = time.monotonic()
        if now >= self._next_refresh:  # a hot reload may bring new categories, so new route topics
            self._next_refresh = now + self.topic_refresh_s
            await self._assign_new_topics()
        if not self._positions:
            await asyncio.sleep(timeout_ms / 1000.0)
            return 0
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5000)
        read_at = time.time()
        for tp, records in batches.items():
            record_one = self._record_deadletter if tp.topic == self.topics.deadletter else self._record_enriched
            for record in records:
                seen_at = record.timestamp / 1000.0 if self.clock == "record" else read_at
                # ``recent`` is False for records written before the collector started
                record_one(tp.topic, record.value or b"", seen_at, record.timestamp >= self._started_ms)
            if records:
                self._positions[tp] = records[-1].offset + 1
        return sum(len(records) for records in batches.values())

    def _record_deadletter(self, topic: str, value: bytes, seen_at: float, recent: bool) -> None:
        try:
            letter = DeadLetter.model_validate_json(value)
        except ValidationError as exc:
            self._schema_error(topic, exc, recent)
            return
        entry = self.ledger.on_deadletter(letter.payload_sha256, letter.ticket_id, topic, letter.error.code, seen_at)
        self.foreign += recent and entry is None

    def _record_enriched(self, topic: str, value: bytes, seen_at: float, recent: bool) -> None:
        try:
            obj = json.loads(value)
            ticket_id = obj["ticket_id"] if isinstance(obj, dict) else None
        except (ValueError, KeyError):
            ticket_id = None
        if not isinstance(ticket_id, str):
            self._schema_error(topic, ValueError("not a JSON object with a string ticket_id"), recent)
            return
        first = self.ledger.find(ticket_id)
        if first is None:
            self.foreign += recent
            return
        triage = None
        if first.enriched_at is None:
            try:
                triage = EnrichedTicket.model_validate(obj).triage
            except ValidationError as exc:
                self._schema_error(topic, exc, recent=True)
                return
        self.ledger.on_enriched(ticket_id, topic, triage, seen_at)

    def _schema_error(self, topic: str, exc: Exception, recent: bool) -> None:
        if not recent:
            return
        self.schema_errors += 1
        if len(self.schema_samples) < _MAX_SCHEMA_SAMPLES:
            self.schema_samples.append(f"{topic}: {str(exc).splitlines()[0][:200]}")
