"""The Faust agent: take → pipeline → publish in order → ack in order. Nothing else happens here.

``stream.noack_take`` never acks by itself. A batch's events are acked only once the broker acknowledged every
record built from them *and* every batch taken before it was acked: commits advance strictly in input-offset
order, whatever order the broker confirms in. Up to ``max_inflight_batches`` overlap. A rebalance waits for the
in-flight batches (or, past ``session_timeout_s``, drops them unacked), so an old owner never publishes after
the new one started.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import faust
import structlog
from faust import Stream
from faust.types import EventT, StreamT

from schemas.enums import ErrorCode
from schemas.messages import ErrorInfo
from worker.metrics import WorkerMetrics
from worker.pipeline import Outcome, TriagePipeline
from worker.publisher import REFUSED_RECORD, TOO_LARGE, BatchPublisher, Sent
from worker.records import InRecord, OutRecord
from worker.settings import WorkerSettings
from worker.transport import InflightBytes, TriageApp, TriageConsumer

__all__ = ["BatchRunner", "register_agent"]

log = structlog.get_logger(__name__)


@dataclass
class _Batch:
    """One taken micro-batch between take and ack."""

    events: Sequence[EventT]
    records: list[InRecord]
    epoch: int
    outcomes: asyncio.Task[list[Outcome]]
    sent: list[Sent] | None = None
    sent_at: float | None = None  # until the broker acknowledged every record batch

    @property
    def size(self) -> int:
        return sum(len(record.value or b"") for record in self.records)


def _in_record(event: EventT) -> InRecord:
    message = event.message
    return InRecord(message.topic, message.partition, message.offset, message.key, message.value, message.timestamp)


class BatchRunner:
    """Runs batches through the pipeline concurrently and publishes and acks them in the order they were taken."""

    def __init__(
        self, app: faust.App, settings: WorkerSettings, pipeline: TriagePipeline, inflight: InflightBytes,
        metrics: WorkerMetrics) -> None:
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self.inflight = inflight
        self.metrics = metrics
        self.publisher = BatchPublisher(app)
        self.epoch = 0  # bumped by a rebalance: batches taken before it are never published or acked after it
        self._slots = asyncio.Semaphore(settings.max_inflight_batches)
        self._batches: deque[_Batch] = deque()
        self._to_publish: asyncio.Queue[_Batch] = asyncio.Queue()
        self._to_ack: asyncio.Queue[_Batch] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()  # cleared while a rebalance waits for the batches in flight
        self._open.set()
        self._stopping = False
        self._stream: StreamT | None = None
        self.outputs_ready = False  # the output topics exist and their partitions are known: ready to publish

    @property
    def unconfirmed_s(self) -> float:
        """Age of the oldest record batch sent and not yet acknowledged by the broker (0 when none)."""
        sent = [batch.sent_at for batch in self._batches if batch.sent_at is not None]
        return time.monotonic() - min(sent) if sent else 0.0

    async def run(self, stream: StreamT) -> None:
        """Consume the stream until the agent stops."""
        self._stream = stream
        await self.publisher.wait_for_topics(self.settings.topics.outputs(()))  # routes: on first use
        self.outputs_ready = True
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._publish_in_order()), loop.create_task(self._ack_in_order())]
        try:
            wait_s = self.settings.batch_wait_ms / 1000
            batches = cast(Stream, stream).noack_take(self.settings.batch_size, within=wait_s)
            async for events in batches:
                await self.take(events)
        finally:
            for task in tasks:
                task.cancel()

    async def take(self, events: Sequence[EventT]) -> None:
        """Start one batch through the pipeline; waits while ``max_inflight_batches`` are in flight."""
        epoch = self.epoch
        await self._slots.acquire()
        await self._open.wait()
        if self._stopping:
            self._slots.release()
            await asyncio.Event().wait()  # shutting down: leave the batch unacked until the agent is stopped
        generation = self.app.consumer_generation_id
        events = [event for event in events if event.message.generation_id == generation]
        # Taken before a rebalance, or during one (until its assignment the old generation still looks current):
        # the partitions' owner reads them again from the committed offset.
        if epoch != self.epoch or not events or not cast(TriageConsumer, self.app.consumer).settled:
            self._slots.release()
            return
        records = [_in_record(event) for event in events]
        self.metrics.batch_size.observe(len(records))
        for topic, count in Counter(record.topic for record in records).items():
            self.metrics.tickets_in.labels(topic=topic).inc(count)
        outcomes = asyncio.get_running_loop().create_task(self.pipeline.process(records))
        batch = _Batch(events, records, self.epoch, outcomes)
        self._batches.append(batch)
        self._idle.clear()
        self._to_publish.put_nowait(batch)

    async def _publish_in_order(self) -> None:
        try:
            while True:
                batch = await self._to_publish.get()
                outcomes = await batch.outcomes
                if batch.epoch == self.epoch:
                    batch.sent = await self.publisher.send([r for outcome in outcomes for r in outcome.records])
                    batch.sent_at = time.monotonic()
                self._to_ack.put_nowait(batch)
        except Exception as exc:  # noqa: BLE001 - the producer is broken: stop rather than skip
            await self._give_up(exc)

    async def _ack_in_order(self) -> None:
        try:
            while True:
                batch = await self._to_ack.get()
                if batch.sent is not None and batch.epoch == self.epoch:
                    await self._confirm(batch.sent)
                    batch.sent_at = None
                    if batch.epoch == self.epoch:
                        await self._ack(batch)
                self._done(batch)
        except Exception as exc:  # noqa: BLE001 - unacknowledged outputs: never ack their inputs
            self.metrics.publish_failures.inc()
            await self._give_up(exc)

    async def _confirm(self, sent: list[Sent]) -> None:
        """Wait for the broker to acknowledge every record batch; records it refuses are dead-lettered alone."""
        refused: list[OutRecord] = []
        for item in sent:
            try:
                await item.future
            except REFUSED_RECORD:
                refused.extend(item.records)
        lettered: set[InRecord] = set()
        for record in refused:
            if record.source in lettered:
                continue
            try:
                await self._publish_alone(record)
                continue
            except REFUSED_RECORD as exc:
                lettered.add(record.source)
                await self._dead_letter_refused(record, exc)

    async def _dead_letter_refused(self, record: OutRecord, exc: Exception) -> None:
        """Dead-letter a ticket whose record the broker refused (over its size limit, or invalid to it).

        Its whole payload first; cut like an invalid message's when the broker refuses that too; then only its hash,
        size and where it stays. A dead-letter topic that refuses even that is misconfigured: the worker stops.
        """
        code = ErrorCode.OUTPUT_TOO_LARGE if isinstance(exc, TOO_LARGE) else ErrorCode.OUTPUT_REFUSED
        error = ErrorInfo(code=code, message=f"the broker refused its record: {type(exc).__name__}: {exc}"[:300])
        whole = record.topic != self.settings.topics.deadletter
        ticket_id = record.key.decode("utf-8", "surrogatepass") if whole and record.key is not None else None
        for keep in dict.fromkeys([*([None] if whole else []), self.settings.deadletter_payload_bytes, 0]):
            letter = self.pipeline.dead_letter(record.source, error, ticket_id, valid=whole, keep=keep)
            try:
                await self._publish_alone(letter)
            except REFUSED_RECORD:
                if keep == 0:
                    raise
            else:
                return self.pipeline.count_dead_letter(record.source, error, ticket_id)

    async def _publish_alone(self, record: OutRecord) -> None:
        for item in await self.publisher.send([record]):
            await item.future

    async def _ack(self, batch: _Batch) -> None:
        assert self._stream is not None
        for event in batch.events:
            await self._stream.ack(event)
        now = time.time()
        outputs = Counter(record.topic for item in batch.sent or [] for record in item.records)
        for topic, count in outputs.items():
            self.metrics.records_out.labels(topic=topic).inc(count)
        for record in batch.records:
            if record.timestamp:
                self.metrics.end_to_end_seconds.observe(max(0.0, now - record.timestamp))

    def _done(self, batch: _Batch) -> None:
        self._batches.remove(batch)
        self.inflight.release(batch.size)
        self._slots.release()
        if not self._batches:
            self._idle.set()

    async def drain(self) -> None:
        """Take no further batch; wait for the ones in flight unless the model is down (they stay uncommitted)."""
        self._stopping = True
        while not self._idle.is_set() and self.pipeline.model.problem is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 0.5)

    async def before_revoke(self) -> None:
        """Before partitions move: finish the batches in flight and commit them, or drop them unacked.

        Nothing taken before this returns is published afterwards, so the next owner, which starts from the
        committed offset, never races this worker and republishes nothing it published.
        """
        self._open.clear()
        try:
            if self._batches:
                try:
                    await asyncio.wait_for(self._idle.wait(), self.settings.session_timeout_s)
                except TimeoutError:
                    log.warning("rebalance_dropped_batches", batches=len(self._batches))
            await self.app.consumer.commit()
        finally:
            self.epoch += 1
            self.inflight.reset(sum(batch.size for batch in self._batches))
            self._open.set()

    async def _give_up(self, exc: BaseException) -> None:
        log.error("publish_failed", error=type(exc).__name__, detail=str(exc)[:300])
        await self.app.crash(exc)


def register_agent(app: faust.App, settings: WorkerSettings, runner: BatchRunner,
                   prepare_outputs: Callable[[Path | None], Awaitable[None]]) -> None:
    """Bind the triage agent to ``app``: one per process, consuming every assigned partition."""
    incoming = app.topic(
        settings.topics.incoming, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=settings.topics.partitions, replicas=settings.topics.replication_factor,
        internal=settings.topics.create)

    @app.agent(incoming, name="triage")
    async def triage(stream: StreamT) -> None:
        await runner.pipeline.model.ready.wait()
        await prepare_outputs(None if settings.model_backend == "noop" else settings.model_dir)
        await runner.run(stream)

    cast(TriageApp, app).before_revoke = runner.before_revoke
