"""One micro-batch, Kafka-free: ``process(records) -> list[Outcome]``, one ``Item`` per record; never raises.

validate → one cache lookup → the model on the distinct misses → each record's enriched records or its dead
letter → one cache store, before anything is produced (a ticket replayed after a crash then finds what was
published, and is published again byte for byte). A record that cannot be validated, triaged or built is
dead-lettered alone. The one fallback layer: a model call that fails is retried text by text, each call alone, so
only texts that fail alone are dead-lettered (``model_crashed`` when one kills a model that answers others). A
model that cannot run at all makes ``process`` wait (``worker.model``): that is the infrastructure's fault, never
the ticket's. The batch keeps its engine open to its end; if that engine went down and was replaced meanwhile,
the batch runs again on the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import structlog
from pydantic import ValidationError

from schemas.enums import ErrorCode
from schemas.messages import ErrorInfo, Ticket, Triage
from schemas.validation import TicketRejected, decode_ticket
from worker.cache import TriageCache
from worker.metrics import WorkerMetrics
from worker.model import Engine, EngineReplaced, ModelClient, ModelCrashed, ModelFailed
from worker.records import InRecord, OutRecord
from worker.routing import dead_letter_record, enriched_records
from worker.settings import WorkerSettings

__all__ = ["Item", "Outcome", "TriagePipeline"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Item:
    """One record on its way through the batch: what it parsed to, its cache keys, its triage or its error."""

    record: InRecord
    ticket: Ticket | None = None
    text_key: str = ""
    ticket_key: str = ""
    triage: Triage | None = None
    triage_json: bytes | None = None  # as published before (a redelivery): spliced in verbatim
    fresh: bool = False  # triaged by the model in this batch: its answer is cached for the text
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input record became: its enriched record on each of its topics, or one dead letter."""

    source: InRecord
    records: list[OutRecord] = field(default_factory=list)


class TriagePipeline:
    """Turns consumed records into records to publish; never raises for a bad message or a model error."""

    def __init__(
        self, settings: WorkerSettings, cache: TriageCache, model: ModelClient, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.cache = cache
        self.model = model
        self.metrics = metrics
        self.output_limit = settings.max_output_bytes

    def bound_outputs(self, topic_limit: int | None) -> None:
        """Hold every record to the smallest output topic's own limit too, when the broker states one."""
        self.output_limit = min(self.settings.max_output_bytes, topic_limit or self.settings.max_output_bytes)
        log.info("output_limit", bytes=self.output_limit, topic_limit=topic_limit)

    async def process(self, records: Sequence[InRecord]) -> list[Outcome]:
        """One ``Outcome`` per record, in input order."""
        while True:
            with self.model.serving() as engine:  # one model version per batch: it is part of every cache key
                try:
                    return await self._process(records, engine)
                except EngineReplaced as replaced:
                    log.warning("batch_rerun", size=len(records), detail=str(replaced))

    async def _process(self, records: Sequence[InRecord], engine: Engine) -> list[Outcome]:
        items = [self._validate(record, engine.version) for record in records]
        await self._look_up(items)
        await self._classify(items, engine)
        published: dict[str, bytes] = {}
        outcomes = [self._outcome(item, published) for item in items]
        await self.cache.put_many(
            {item.text_key: item.triage for item in items if item.fresh and item.error is None and item.triage},
            {key: value for key, value in published.items() if key})
        return outcomes

    def _validate(self, record: InRecord, version: str) -> Item:
        item = Item(record)
        try:
            item.ticket = decode_ticket(record.value, self.settings.max_message_bytes)
            item.text_key = self.cache.key(version, item.ticket.text)
            item.ticket_key = self.cache.ticket_key(version, item.ticket.ticket_id, item.ticket.text)
        except TicketRejected as rejected:
            item.error = rejected.info
        except Exception as exc:  # noqa: BLE001 - one hostile record must not take its batch down
            item.error = _failed("validation", exc)
        return item

    async def _look_up(self, items: list[Item]) -> None:
        """One round trip: the triage already published for each ticket (a redelivery), else one for its text."""
        valid = [item for item in items if item.error is None]
        stored = await self.cache.get_many(
            list(dict.fromkeys([*(i.ticket_key for i in valid), *(i.text_key for i in valid)]))
        )
        hits = 0
        for item in valid:
            if (triage := _parse(stored.get(item.ticket_key), item.ticket_key)) is not None:
                item.triage, item.triage_json = triage, stored[item.ticket_key]
            elif (triage := _parse(stored.get(item.text_key), item.text_key)) is not None:
                item.triage = triage.model_copy(
                    update={"cached": True, "triaged_at": datetime.now(UTC), "latency_ms": 0.0}
                )
            else:
                continue
            hits += 1
        if valid and self.cache.active:
            self.metrics.on_cache_lookup(hits, len(valid) - hits)

    async def _classify(self, items: list[Item], engine: Engine) -> None:
        """The model on each distinct text still without a triage; failing texts are retried one by one."""
        by_text: dict[str, list[Item]] = {}
        for item in items:
            if item.error is None and item.triage is None and item.ticket is not None:
                by_text.setdefault(item.text_key, []).append(item)
        if not by_text:
            return
        texts = [group[0].ticket.text for group in by_text.values() if group[0].ticket is not None]
        answers: list[Triage | ErrorInfo]
        try:
            answers = list(await self.model.predict(engine, texts))
        except ModelFailed as exc:
            log.error("inference_failed", size=len(texts), detail=str(exc))
            answers = [await self._predict_one(engine, text) for text in texts]
        for group, answer in zip(by_text.values(), answers, strict=True):
            for item in group:
                if isinstance(answer, ErrorInfo):
                    item.error = answer
                else:
                    item.triage, item.fresh = answer, True

    async def _predict_one(self, engine: Engine, text: str) -> Triage | ErrorInfo:
        try:
            (triage,) = await self.model.predict(engine, [text], alone=True)
        except ModelFailed as exc:
            code = ErrorCode.MODEL_CRASHED if isinstance(exc, ModelCrashed) else ErrorCode.PROCESSING_FAILED
            return ErrorInfo(code=code, message=f"model failed: {exc}")
        return triage

    def _outcome(self, item: Item, published: dict[str, bytes]) -> Outcome:
        """A triaged ticket's records (the same bytes for the same ticket all batch long), or its dead letter."""
        records: list[OutRecord] = []
        if item.error is None:
            try:
                records = self._enriched(item, published)
            except Exception as exc:  # noqa: BLE001 - a record that cannot be built is dead-lettered alone
                item.error = _failed("routing", exc)
        if item.error is None:
            return Outcome(item.record, records)
        ticket_id = item.ticket.ticket_id if item.ticket is not None else None
        letter = self.dead_letter(item.record, item.error, ticket_id, valid=ticket_id is not None)
        self.count_dead_letter(item.record, item.error, ticket_id)
        return Outcome(item.record, [letter])

    def _enriched(self, item: Item, published: dict[str, bytes]) -> list[OutRecord]:
        """The ticket's records; none, and ``item.error`` set, when they are too large to publish."""
        ticket, triage = item.ticket, item.triage
        if ticket is None or not isinstance(triage, Triage):
            raise TypeError(f"no triage for a valid ticket: {type(triage).__name__}")
        triage_json = item.triage_json or published.get(item.ticket_key) or triage.model_dump_json().encode()
        records = enriched_records(ticket, triage, self.settings.topics, item.record, triage_json)
        if not records[0].fits(self.output_limit, self.settings.output_compression):
            item.error = ErrorInfo(
                code=ErrorCode.OUTPUT_TOO_LARGE,
                message=f"enriched record of {len(records[0].value)} bytes is over the output topics' "
                f"{self.output_limit} bytes, even compressed ({self.settings.output_compression})",
            )
            return []
        if item.triage_json is None:
            published.setdefault(item.ticket_key, triage_json)
        self.metrics.tickets_triaged.labels(category=triage.category, priority=triage.priority.value).inc()
        if triage.out_of_scope:
            self.metrics.out_of_scope.inc()
        return records

    def dead_letter(self, record: InRecord, error: ErrorInfo, ticket_id: str | None, *, valid: bool,
                    keep: int | None = None) -> OutRecord:
        """The dead letter of one input (counted apart, once it is the one published).

        A valid ticket's dead letter keeps its whole payload, an invalid message's ``deadletter_payload_bytes``
        of it (or ``keep`` bytes); either is cut to that when the dead letter would be over ``output_limit``
        (its source topic, partition and offset say where the whole message stays). Keyed by the ticket id, or
        by the input's own key when the id cannot be one: building it must never fail.
        """
        build = partial(dead_letter_record, record, error, self.settings.topics.deadletter)
        cut = self.settings.deadletter_payload_bytes
        keep = keep if keep is not None else len(record.value or b"") if valid else cut
        try:
            letter = build(ticket_id=ticket_id, max_payload_bytes=keep)
        except Exception:  # noqa: BLE001 - an id that cannot be encoded: fall back to the record's key
            ticket_id = None
            letter = build(ticket_id=None, max_payload_bytes=keep)
        if keep > cut and not letter.fits(self.output_limit, self.settings.output_compression):
            letter = build(ticket_id=ticket_id, max_payload_bytes=cut)
        return letter

    def count_dead_letter(self, record: InRecord, error: ErrorInfo, ticket_id: str | None) -> None:
        self.metrics.dead_letters.labels(reason=error.code.value).inc()
        log.info("dead_letter", reason=error.code.value, topic=record.topic, partition=record.partition,
                 offset=record.offset, ticket_id=ticket_id, size=len(record.value or b""))


def _failed(stage: str, exc: BaseException) -> ErrorInfo:
    """``processing_failed`` for an unexpected error, naming the stage and the exception (never the text)."""
    return ErrorInfo(
        code=ErrorCode.PROCESSING_FAILED, message=f"{stage} failed: {type(exc).__name__}: {str(exc)[:200]}")


def _parse(value: bytes | None, key: str) -> Triage | None:
    """A stored triage, or None (logged when something was stored that is not one)."""
    if value is None:
        return None
    try:
        return Triage.model_validate_json(value)
    except ValidationError:
        log.warning("cache_value_invalid", key=key)
        return None
