"""The Faust agent: micro-batches off ``tickets.incoming``, pipelined through the model, acked only when published.

Delivery is at-least-once. ``stream.noack_take`` never acks by itself (plain ``take`` acks a batch as soon
as the loop asks for the next one, which would commit offsets of tickets whose outputs are still in
flight). Each batch's events are acked explicitly, after the broker acknowledged every record built from
them; Faust commits only offsets below the first unacked one, so a crash replays anything unconfirmed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import cast

import faust
import structlog
from faust import Stream
from faust.types import EventT, StreamT

from worker.batching import PreparedBatch, TriagePipeline
from worker.inference import Predictor
from worker.publisher import BatchPublisher
from worker.records import InRecord, OutRecord
from worker.reload import ModelHolder
from worker.settings import WorkerSettings
from worker.topics import ensure_output_topics

__all__ = ["BatchRunner", "register_agent"]

log = structlog.get_logger(__name__)


def _in_record(event: EventT) -> InRecord:
    message = event.message
    return InRecord(message.topic, message.partition, message.offset, message.key, message.value, message.timestamp)


class BatchRunner:
    """Overlaps the stages of consecutive batches while keeping their records in input order.

    The agent loop validates a batch and starts its classification; one publisher task then takes batches
    in order, sends their records, and acks the batch's events once the broker has acknowledged them all.
    At most ``max_inflight_batches`` batches are between take and ack; the agent waits when that is full,
    which in turn stops Faust fetching more. ``drain`` (on shutdown) stops taking batches and waits for the
    ones in flight.
    """

    def __init__(self, app: faust.App, settings: WorkerSettings, pipeline: TriagePipeline, holder: ModelHolder) -> None:
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self.holder = holder
        self.metrics = pipeline.metrics
        self.publisher = BatchPublisher(app)
        self._slots = asyncio.Semaphore(settings.max_inflight_batches)
        self._ordered: asyncio.Queue[tuple[Sequence[EventT], asyncio.Task[list[OutRecord]]]] = asyncio.Queue()
        self._confirming: set[asyncio.Task[None]] = set()
        self._publisher: asyncio.Task[None] | None = None
        self._stream: StreamT | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    async def run(self, stream: StreamT) -> None:
        """Consume the stream until the agent stops."""
        self._stream = stream
        await self.publisher.wait_for_topics(self.settings.topics.outputs())
        self._publisher = asyncio.get_running_loop().create_task(self._publish_in_order())
        try:
            batches = cast(Stream, stream).noack_take(self.settings.batch_size, within=self.settings.batch_wait_s)
            async for events in batches:
                await self.submit(events)
        finally:
            self._publisher.cancel()

    async def drain(self) -> None:
        """Take no further batch and wait until every batch in flight is published and acked.

        Events already fetched but not yet taken stay unacked, so their offsets are not committed and
        whoever consumes the partition next processes them.
        """
        self._stopping = True
        await self._idle.wait()

    async def submit(self, events: Sequence[EventT]) -> None:
        """Validate and look up one batch, then hand it to the model without waiting for the result."""
        await self._slots.acquire()
        if self._stopping:
            self._slots.release()
            await asyncio.Event().wait()  # shutting down: leave the batch unacked until the agent is stopped
        self._inflight += 1
        self._idle.clear()
        records = [_in_record(event) for event in events]
        self.pipeline.count_in(records)
        predictor = self.holder.predictor
        loop = asyncio.get_running_loop()
        try:
            prepared = await self.pipeline.prepare(records, predictor)
            classified = loop.create_task(self._classify(prepared, records, predictor))
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the stream: retry record by record
            classified = loop.create_task(self._one_by_one(records, predictor, exc))
        self._ordered.put_nowait((events, classified))

    async def _classify(
        self, prepared: PreparedBatch, records: list[InRecord], predictor: Predictor
    ) -> list[OutRecord]:
        try:
            return await self.pipeline.classify(prepared)
        except Exception as exc:  # noqa: BLE001 - same as in submit
            return await self._one_by_one(records, predictor, exc)

    async def _one_by_one(self, records: list[InRecord], predictor: Predictor, exc: BaseException) -> list[OutRecord]:
        log.error("batch_failed", size=len(records), error=type(exc).__name__, detail=str(exc)[:200])
        return await self.pipeline.process_each(records, predictor)

    async def _publish_in_order(self) -> None:
        while True:
            events, classified = await self._ordered.get()
            try:
                out = await classified
                pending = await self.publisher.send(out)
            except Exception as exc:  # noqa: BLE001 - no dead letter could be built, or the producer is broken:
                # stop rather than skip; the batch is replayed after the restart
                await self._give_up(exc)
                return
            task = asyncio.get_running_loop().create_task(self._confirm(events, out, pending))
            self._confirming.add(task)
            task.add_done_callback(self._confirming.discard)

    async def _confirm(
        self, events: Sequence[EventT], out: list[OutRecord], pending: list[asyncio.Future[object]]
    ) -> None:
        try:
            await asyncio.gather(*pending)
        except Exception as exc:  # noqa: BLE001 - unacknowledged outputs: never ack their inputs
            self.metrics.publish_failures.inc()
            await self._give_up(exc)
            return
        assert self._stream is not None
        for event in events:
            await self._stream.ack(event)
        self._slots.release()
        self._inflight -= 1
        if not self._inflight:
            self._idle.set()
        now = time.time()
        per_topic = Counter(r.topic for r in out)
        for topic, count in per_topic.items():
            self.metrics.records_out.labels(topic=topic).inc(count)
        for event in events:
            if event.message.timestamp:
                self.metrics.end_to_end_seconds.observe(max(0.0, now - event.message.timestamp))
        log.debug("batch_published", size=len(events), records=len(out))

    async def _give_up(self, exc: BaseException) -> None:
        log.error("publish_failed", error=type(exc).__name__, detail=str(exc)[:300])
        await self.app.crash(exc)


def register_agent(app: faust.App, settings: WorkerSettings, runner: BatchRunner) -> None:
    """Bind the triage agent to ``app``: one per process, consuming every assigned partition."""
    incoming = app.topic(
        settings.topics.incoming,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topics.partitions,
        replicas=settings.topics.replication_factor,
        internal=settings.topics.create,
    )

    @app.agent(incoming, name="triage")
    async def triage(stream: StreamT) -> None:
        if settings.topics.create:
            await ensure_output_topics(app, settings.topics)
        await runner.holder.ready.wait()
        await runner.run(stream)
