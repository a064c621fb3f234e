"""The feedback process's Faust app: enriched → join store; feedback → join → metrics, journal, dead letters.

Its own process, not an agent of the worker: the worker's event loop stays on the hot path alone (its drain is
measured with and without this process), the feedback process can be restarted, scaled or turned off without
touching triage, and it holds days of per-ticket state that the worker's stateless partitions should not carry.
Every feedback message ends in exactly one outcome, recorded in Redis before its offset is committed: joined,
too_late (no published triage in the store), or deadlettered with a reason; a redelivered one counts as duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import faust
import redis
import structlog
from faust.types import EventT
from pydantic import ValidationError

from feedback.join import Joined, Published, answer
from feedback.journal import Journal
from feedback.metrics import FeedbackMetrics
from feedback.served import ServedCheckpoint
from feedback.settings import FeedbackSettings
from feedback.store import JoinStore
from schemas.enums import ErrorCode
from schemas.feedback import Feedback, FeedbackRejected, decode_feedback
from schemas.kafka import kafka_credentials
from schemas.messages import DeadLetter, EnrichedTicket, ErrorInfo

__all__ = ["FeedbackProcessor", "create_app"]

log = structlog.get_logger(__name__)
T = TypeVar("T")
RETRY_S = 1.0


async def _until_redis_answers(call: Callable[[], Awaitable[T]], what: str) -> T:
    """Retry a Redis call until it succeeds: the batch stays unacked meanwhile, so nothing is lost or skipped."""
    while True:
        try:
            return await call()
        except (redis.RedisError, OSError) as exc:
            log.warning("join_store_unavailable", during=what, error=type(exc).__name__, retry_s=RETRY_S)
            await asyncio.sleep(RETRY_S)


class FeedbackProcessor:
    """The two stream steps, independent of Faust: ``on_enriched`` and ``on_feedback`` take raw records."""

    def __init__(self, settings: FeedbackSettings, store: JoinStore, metrics: FeedbackMetrics,
                 served: ServedCheckpoint, journal: Journal,
                 send_deadletter: Callable[[str | None, bytes], Awaitable[None]]) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.served = served
        self.journal = journal
        self.send_deadletter = send_deadletter

    async def on_enriched(self, records: Sequence[tuple[int, int, bytes | None]]) -> None:
        """Keep what each published ticket's feedback will be joined with. Unreadable records are logged, skipped."""
        kept: list[tuple[str, Published]] = []
        for partition, offset, raw in records:
            try:
                enriched = EnrichedTicket.model_validate_json(raw or b"")
            except ValidationError:
                log.warning("enriched_unreadable", partition=partition, offset=offset, size=len(raw or b""))
                continue
            published = Published.from_enriched(enriched, self.settings.feedback.store.max_text_bytes)
            kept.append((enriched.ticket_id, published))
        await _until_redis_answers(lambda: self.store.remember(kept), "remember")
        self.metrics.on_published([published for _, published in kept])

    async def on_feedback(self, records: Sequence[tuple[int, int, bytes | None]]) -> None:
        """Join each feedback message, or count it too late, or dead-letter it; then record its outcome once."""
        if self.served.refresh():
            self.metrics.reference = self.served.reference
        decoded: list[tuple[int, int, bytes, Feedback | FeedbackRejected]] = []
        for partition, offset, raw in records:
            try:
                decoded.append((partition, offset, raw or b"", decode_feedback(raw)))
            except FeedbackRejected as exc:
                decoded.append((partition, offset, raw or b"", exc))
        ids = [item.ticket_id for *_, item in decoded if isinstance(item, Feedback)]
        found = dict(zip(ids, await _until_redis_answers(lambda: self.store.lookup(ids), "lookup"), strict=True))
        joined: list[Joined] = []
        for partition, offset, raw, item in decoded:
            outcome, result = self._outcome(item, found)
            if isinstance(result, FeedbackRejected):
                await self._dead_letter(raw, result, partition, offset)
            ticket_id = item.ticket_id if isinstance(item, Feedback) else item.ticket_id
            fresh = await _until_redis_answers(partial(self.store.claim, ticket_id or "", raw, outcome), "claim")
            if not fresh:
                self.metrics.on_outcome("duplicate")
                continue
            if isinstance(result, Joined):
                joined.append(result)
                self.metrics.on_joined(result, self.served.taxonomy.out_of_scope_category)
            else:
                self.metrics.on_outcome(outcome)
            log.info("feedback_" + outcome, ticket_id=ticket_id, partition=partition, offset=offset)
        self.journal.append(joined)

    def _outcome(self, item: Feedback | FeedbackRejected,
                 found: dict[str, Published | None]) -> tuple[str, Joined | FeedbackRejected | None]:
        if isinstance(item, FeedbackRejected):
            return "deadlettered", item
        try:
            label, category, priority = answer(item, self.served.taxonomy)
        except FeedbackRejected as exc:
            return "deadlettered", exc
        published = found.get(item.ticket_id)
        if published is None:
            return "too_late", None
        return "joined", Joined(item.ticket_id, published, label, category, priority)

    async def _dead_letter(self, raw: bytes, rejected: FeedbackRejected, partition: int, offset: int) -> None:
        letter = DeadLetter.build(raw, ErrorInfo(code=ErrorCode(rejected.info.code), message=rejected.info.message),
                                  source_topic=self.settings.topics.feedback, source_partition=partition,
                                  source_offset=offset, ticket_id=rejected.ticket_id)
        await self.send_deadletter(rejected.ticket_id, letter.model_dump_json().encode("utf-8"))
        log.warning("feedback_rejected", ticket_id=rejected.ticket_id, code=rejected.info.code.value,
                    reason=rejected.info.message, partition=partition, offset=offset)


def create_app(settings: FeedbackSettings) -> tuple[faust.App, FeedbackProcessor]:
    """The Faust app with its two agents, and the processor they call (tests and the CLI read its metrics)."""
    options = settings.feedback
    app = faust.App(
        options.group_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        broker_credentials=kafka_credentials(settings.kafka),
        datadir=str(options.state_dir),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=options.session_timeout_s,
        broker_heartbeat_interval=min(3.0, options.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_allow_declare=settings.topics.create,
        topic_disable_leader=True,
        web_enabled=False,
    )
    enriched = app.topic(settings.topics.enriched, value_serializer="raw")
    feedback = app.topic(settings.topics.feedback, value_serializer="raw")
    deadletter = app.topic(settings.topics.deadletter, value_serializer="raw")
    served = ServedCheckpoint(settings.model_dir)
    store = JoinStore(options.store)
    metrics = FeedbackMetrics(served.reference)

    async def send_deadletter(key: str | None, value: bytes) -> None:
        """Until the broker acknowledged it: only then may the feedback message's offset be committed."""
        while True:
            try:
                await (await deadletter.send(key=key.encode("utf-8") if key else None, value=value))
                return
            except Exception as exc:  # noqa: BLE001 - any send failure: retry, the batch stays unacked
                log.warning("deadletter_send_failed", error=type(exc).__name__, retry_s=RETRY_S)
                await asyncio.sleep(RETRY_S)

    processor = FeedbackProcessor(settings, store, metrics, served, Journal(options.data_dir), send_deadletter)

    def records(events: Sequence[EventT]) -> list[tuple[int, int, bytes | None]]:
        return [(e.message.partition, e.message.offset, e.message.value) for e in events]

    @app.agent(enriched)
    async def remember_published(stream: Any) -> None:
        async for events in stream.take_events(options.batch_size, within=0.2):
            await processor.on_enriched(records(events))

    @app.agent(feedback)
    async def join_feedback(stream: Any) -> None:
        async for events in stream.take_events(options.batch_size, within=0.2):
            await processor.on_feedback(records(events))

    async def close_store(sender: Any, *args: Any, **kwargs: Any) -> None:
        await store.close()

    app.on_before_shutdown.connect(close_store)  # type: ignore[arg-type]
    return app, processor
