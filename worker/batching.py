"""One micro-batch, Kafka-free: validate → cache lookup → classify the misses once → route or dead-letter.

Split in two steps so the worker can pipeline batches: ``prepare`` (event loop: parse, one Redis MGET) and
``classify`` (the model in a worker thread, then the output records).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from schemas.enums import ErrorCode
from schemas.messages import ErrorInfo, Ticket, Triage
from schemas.validation import TicketRejected, decode_ticket
from worker.cache import TriageCache
from worker.deadletter import dead_letter_record
from worker.inference import Predictor
from worker.metrics import WorkerMetrics
from worker.model_queue import ModelQueue
from worker.records import InRecord, OutRecord
from worker.routing import enriched_records
from worker.settings import WorkerSettings

__all__ = ["PreparedBatch", "TriagePipeline"]

log = structlog.get_logger(__name__)


@dataclass
class PreparedBatch:
    """A batch after validation and the cache lookup, waiting for the model.

    ``keys`` are text-cache keys, ``ticket_keys`` per-ticket keys; ``replayed`` holds the triage JSON
    already published for a ticket (a redelivery), ``found`` cached answers by text.
    """

    records: list[InRecord]
    predictor: Predictor
    tickets: list[Ticket | None]
    keys: list[str | None]
    ticket_keys: list[str | None]
    dead: dict[int, OutRecord] = field(default_factory=dict)
    found: dict[str, Triage] = field(default_factory=dict)
    replayed: dict[str, tuple[Triage, bytes]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    failures: dict[str, ErrorInfo] = field(default_factory=dict)


class TriagePipeline:
    """Turns consumed records into records to publish; never raises for a bad message or a model error."""

    def __init__(self, settings: WorkerSettings, cache: TriageCache, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.cache = cache
        self.metrics = metrics
        self.model = ModelQueue(settings.batch_size, metrics)

    def count_in(self, records: Sequence[InRecord]) -> None:
        """Count a consumed batch once, however often it is processed."""
        self.metrics.batch_size.observe(len(records))
        for topic, count in Counter(record.topic for record in records).items():
            self.metrics.tickets_in.labels(topic=topic).inc(count)

    async def prepare(self, records: Sequence[InRecord], predictor: Predictor) -> PreparedBatch:
        """Validate every record and look the valid ones up in the cache (one round trip)."""
        batch = PreparedBatch(list(records), predictor, [], [], [])
        for index, record in enumerate(records):
            ticket, key, ticket_key = None, None, None
            try:
                ticket = decode_ticket(record.value, self.settings.max_message_bytes)
                key = self.cache.key(predictor.version, ticket.text)
                ticket_key = self.cache.ticket_key(predictor.version, ticket.ticket_id, ticket.text)
            except TicketRejected as rejected:
                batch.dead[index] = self.dead_letter(record, rejected.info, rejected.ticket_id)
                ticket = key = ticket_key = None
            except Exception as exc:  # noqa: BLE001 - one hostile record must not take its batch down
                batch.dead[index] = self.dead_letter(record, _failed("preparing", exc), None)
                ticket = key = ticket_key = None
            batch.tickets.append(ticket)
            batch.keys.append(key)
            batch.ticket_keys.append(ticket_key)
        wanted_tickets = list(dict.fromkeys(k for k in batch.ticket_keys if k is not None))
        wanted_texts = list(dict.fromkeys(k for k in batch.keys if k is not None))
        stored = await self.cache.get_many([*wanted_tickets, *wanted_texts])
        for key in wanted_tickets:
            if key in stored and (triage := _parse(stored[key], key)) is not None:
                batch.replayed[key] = (triage, stored[key])
        for key in wanted_texts:
            if key in stored and (triage := _parse(stored[key], key)) is not None:
                batch.found[key] = triage
        looked_up = 0
        hits = 0
        for key, ticket_key, valid in zip(batch.keys, batch.ticket_keys, batch.tickets, strict=True):
            if key is None or ticket_key is None or valid is None:
                continue
            looked_up += 1
            if ticket_key in batch.replayed or key in batch.found:
                hits += 1
            else:
                batch.missing.setdefault(key, valid.text)
        if looked_up and self.cache.active:
            self.metrics.on_cache_lookup(hits, looked_up - hits)
        return batch

    async def classify(self, batch: PreparedBatch) -> list[OutRecord]:
        """Run the model on the distinct cache misses, build every output record in input order, then
        store what is new (text answers and each ticket's published triage) before returning."""
        computed, batch.failures = await self._run_model(batch.predictor, batch.missing)
        out: list[OutRecord] = []
        published: dict[str, bytes] = {}
        answered: dict[str, Triage] = {}
        labels: Counter[tuple[str, str]] = Counter()
        for index, record in enumerate(batch.records):
            if index in batch.dead:
                out.append(batch.dead[index])
                continue
            try:
                records, triage, ticket_key, triage_json = self._route(batch, index, computed, published)
            except _ModelFailed as failed:
                out.append(self.dead_letter(record, failed.info, failed.ticket_id))
                continue
            except Exception as exc:  # noqa: BLE001 - a record that cannot be routed is dead-lettered alone
                ticket = batch.tickets[index]
                ticket_id = ticket.ticket_id if ticket is not None else None
                out.append(self.dead_letter(record, _failed("routing", exc), ticket_id))
                continue
            published.setdefault(ticket_key, triage_json)
            key = batch.keys[index]
            if key is not None and key in computed:
                answered[key] = computed[key]
            labels[triage.category.value, triage.priority.value] += 1
            out.extend(records)
        for (category, priority), count in labels.items():
            self.metrics.tickets_triaged.labels(category=category, priority=priority).inc(count)
        fresh = {k: v for k, v in published.items() if k not in batch.replayed}
        await self.cache.put_many(answered, fresh)
        return out

    def _route(
        self, batch: PreparedBatch, index: int, computed: dict[str, Triage], published: dict[str, bytes]
    ) -> tuple[list[OutRecord], Triage, str, bytes]:
        """One valid ticket's records: its earlier publication verbatim if any, else a new answer."""
        record = batch.records[index]
        ticket, key, ticket_key = batch.tickets[index], batch.keys[index], batch.ticket_keys[index]
        assert ticket is not None and key is not None and ticket_key is not None
        if ticket_key in batch.replayed:
            triage, triage_json = batch.replayed[ticket_key]
        elif ticket_key in published:
            triage_json = published[ticket_key]
            triage = Triage.model_validate_json(triage_json)
        else:
            if key in batch.failures:
                raise _ModelFailed(batch.failures[key], ticket.ticket_id)
            triage = computed.get(key) or batch.found[key].model_copy(
                update={"cached": True, "triaged_at": datetime.now(UTC), "latency_ms": 0.0}
            )
            triage_json = triage.model_dump_json().encode()
        records = enriched_records(ticket, triage, self.settings.topics, record, triage_json)
        return records, triage, ticket_key, triage_json

    async def _run_model(
        self, predictor: Predictor, missing: dict[str, str]
    ) -> tuple[dict[str, Triage], dict[str, ErrorInfo]]:
        if not missing:
            return {}, {}
        keys, texts = list(missing), list(missing.values())
        try:
            results = await self.model.predict(predictor, texts)
        except Exception as exc:  # noqa: BLE001 - any model failure is isolated per ticket below
            log.error("inference_failed", size=len(texts), error=type(exc).__name__)
            return await self.model.run(_predict_each, predictor, keys, texts)
        return dict(zip(keys, results, strict=True)), {}

    def dead_letter(self, record: InRecord, error: ErrorInfo, ticket_id: str | None) -> OutRecord:
        """The dead-letter record of one input, counted and logged (without its text).

        Keyed by the ticket id, or by the input's own key when the id cannot serve as one: building a dead
        letter must never fail because of what is in the message.
        """
        self.metrics.dead_letters.labels(reason=error.code.value).inc()
        try:
            letter = dead_letter_record(
                record,
                error,
                self.settings.topics.deadletter,
                ticket_id=ticket_id,
                max_payload_bytes=self.settings.deadletter_payload_bytes,
            )
        except Exception:  # noqa: BLE001 - an id that cannot be encoded: fall back to the record's key
            ticket_id = None
            letter = dead_letter_record(
                record,
                error,
                self.settings.topics.deadletter,
                ticket_id=None,
                max_payload_bytes=self.settings.deadletter_payload_bytes,
            )
        log.info(
            "dead_letter",
            reason=error.code.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            ticket_id=ticket_id,
            size=len(record.value or b""),
        )
        return letter

    async def process_each(self, records: Sequence[InRecord], predictor: Predictor) -> list[OutRecord]:
        """After a batch failed as a whole: one record at a time, so only the culprit is dead-lettered."""
        out: list[OutRecord] = []
        for record in records:
            try:
                out.extend(await self.classify(await self.prepare([record], predictor)))
            except Exception as exc:  # noqa: BLE001 - reported in the dead letter
                log.error(
                    "record_failed",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    error=type(exc).__name__,
                )
                out.append(self.dead_letter(record, _failed("processing", exc), None))
        return out

    def close(self) -> None:
        self.model.close()


def _predict_each(
    predictor: Predictor, keys: list[str], texts: list[str]
) -> tuple[dict[str, Triage], dict[str, ErrorInfo]]:
    """After a batch failed: one text at a time, so only the texts that really fail are dead-lettered."""
    done: dict[str, Triage] = {}
    failed: dict[str, ErrorInfo] = {}
    for key, text in zip(keys, texts, strict=True):
        try:
            (done[key],) = predictor.predict([text])
        except Exception as exc:  # noqa: BLE001 - reported in the dead letter
            failed[key] = ErrorInfo(
                code=ErrorCode.PROCESSING_FAILED, message=f"model failed: {type(exc).__name__}: {str(exc)[:200]}"
            )
    return done, failed


class _ModelFailed(Exception):
    """The model failed on this ticket's text (already isolated per text)."""

    def __init__(self, info: ErrorInfo, ticket_id: str) -> None:
        super().__init__(info.message)
        self.info = info
        self.ticket_id = ticket_id


def _failed(stage: str, exc: BaseException) -> ErrorInfo:
    """``processing_failed`` for an unexpected error, naming the stage and the exception (never the text)."""
    return ErrorInfo(
        code=ErrorCode.PROCESSING_FAILED, message=f"{stage} failed: {type(exc).__name__}: {str(exc)[:200]}"
    )


def _parse(value: bytes, key: str) -> Triage | None:
    """A stored triage, or None (logged) when the stored value is not one."""
    try:
        return Triage.model_validate_json(value)
    except ValidationError:
        log.warning("cache_value_invalid", key=key)
        return None
