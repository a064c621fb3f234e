"""A stand-in worker for collector tests: the replay's tickets become real EnrichedTicket/DeadLetter records.

It labels each ticket with the ground truth from its metadata (so accuracy must come out at 100%) and each
off-topic ticket (no truth) out of scope, General Inquiry, Low; marks repeated texts as cached, stamps one
model latency per fetched batch (as ``Classifier.predict`` does), fans enriched tickets out to the enriched,
route and (High) on-call topics, and can be told to drop tickets so the tests see the collector count them
as lost.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loadtest.broker import EmbeddedBroker, create_topics
from schemas.enums import Priority
from schemas.messages import Confidence, DeadLetter, EnrichedTicket, IntentScore, Triage, text_hash
from schemas.topics import TopicSettings
from schemas.validation import TicketRejected, decode_ticket

# What an off-topic ticket (no ground truth) is given: the worker's out-of-scope outcome without a page.
_OUT_OF_SCOPE = {"category": "General Inquiry", "priority": Priority.LOW.value, "intent": "greeting"}


@dataclass
class Relay:
    """Runs in its own thread and event loop until ``stop()``."""

    brokers: str
    topics: TopicSettings
    drop: Callable[[str], bool] = lambda ticket_id: False
    handled: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> Relay:
        self._thread = threading.Thread(target=self._main, name="test-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError(f"test relay did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(20)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self._error = exc
            self._ready.set()

    async def _loop(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.brokers, enable_auto_commit=False, fetch_max_wait_ms=5
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.brokers, linger_ms=2)
        await consumer.start()
        await producer.start()
        try:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(self.topics.incoming) or set()
            tps = [TopicPartition(self.topics.incoming, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self._ready.set()
            seen: set[str] = set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=50)
                batch_ms = 1.0 + time.perf_counter() % 1.0
                for tp, records in batches.items():
                    for record in records:
                        await self._handle(producer, tp, record.offset, record.value, seen, batch_ms)
            await producer.flush()
        finally:
            await producer.stop()
            await consumer.stop()

    async def _handle(
        self,
        producer: AIOKafkaProducer,
        tp: TopicPartition,
        offset: int,
        raw: bytes | None,
        seen: set[str],
        batch_ms: float,
    ) -> None:
        self.handled += 1
        try:
            ticket = decode_ticket(raw)
        except TicketRejected as exc:
            letter = DeadLetter.build(
                raw,
                exc.info,
                source_topic=tp.topic,
                source_partition=tp.partition,
                source_offset=offset,
                ticket_id=exc.ticket_id,
            )
            await producer.send(self.topics.deadletter, letter.model_dump_json().encode())
            return
        if self.drop(ticket.ticket_id):
            return
        truth = ticket.metadata["loadtest"]["truth"] or _OUT_OF_SCOPE
        digest = text_hash(ticket.text)
        triage = Triage(
            category=truth["category"],
            priority=Priority(truth["priority"]),
            intent=truth["intent"],
            confidence=Confidence(category=0.9, intent=0.8, priority=0.9),
            top_intents=[IntentScore(intent=truth["intent"], probability=0.8)],
            needs_review=truth is _OUT_OF_SCOPE,
            out_of_scope=truth is _OUT_OF_SCOPE,
            model_version="relay",
            cached=digest in seen,
            latency_ms=batch_ms,
        )
        seen.add(digest)
        body = EnrichedTicket.from_ticket(ticket, triage).model_dump_json().encode()
        key = ticket.ticket_id.encode()
        await producer.send(self.topics.enriched, body, key=key)
        await producer.send(self.topics.route(triage.category), body, key=key)
        if triage.priority is Priority.HIGH:
            await producer.send(self.topics.oncall, body, key=key)


@pytest.fixture
def topics(broker: EmbeddedBroker, unique: Callable[[str], str]) -> TopicSettings:
    """Per-test topic names, all created up front with 3 partitions (the input) or 1 (outputs)."""
    topic_map = TopicSettings.namespaced(unique("lt"))
    create_topics(broker.bootstrap, {topic_map.incoming: 3} | {t: 1 for t in topic_map.outputs()})
    return topic_map


@pytest.fixture
def relay_factory(broker: EmbeddedBroker, topics: TopicSettings) -> Iterator[Callable[..., Relay]]:
    started: list[Relay] = []

    def make(drop: Callable[[str], bool] = lambda ticket_id: False) -> Relay:
        relay = Relay(broker.bootstrap, topics, drop).start()
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.stop()
