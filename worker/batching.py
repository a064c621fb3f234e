"""One micro-batch, Kafka-free: validate → cache lookup → classify the misses once → route or dead-letter.

Split in two steps so the worker can pipeline batches: ``prepare`` (event loop: parse, one Redis MGET) and
``classify`` (the model in a worker thread, then the output records).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from schemas.enums import ErrorCode
from schemas.messages import ErrorInfo, Ticket, Triage
from schemas.validation import TicketRejected, decode_ticket
from worker.cache import TriageCache
from worker.deadletter import dead_letter_record
from worker.inference import Predictor
from worker.metrics import WorkerMetrics
from worker.records import InRecord, OutRecord
from worker.routing import enriched_records
from worker.settings import WorkerSettings

__all__ = ["PreparedBatch", "TriagePipeline"]

log = structlog.get_logger(__name__)


@dataclass
class PreparedBatch:
    """A batch after validation and the cache lookup, waiting for the model."""

    records: list[InRecord]
    predictor: Predictor
    tickets: list[Ticket | None]
    keys: list[str | None]
    dead: dict[int, OutRecord] = field(default_factory=dict)
    found: dict[str, Triage] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


class TriagePipeline:
    """Turns consumed records into records to publish; never raises for a bad message or a model error."""

    def __init__(self, settings: WorkerSettings, cache: TriageCache, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.cache = cache
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-infer")

    async def prepare(self, records: Sequence[InRecord], predictor: Predictor) -> PreparedBatch:
        """Validate every record and look the valid texts up in the cache (one round trip)."""
        batch = PreparedBatch(list(records), predictor, [], [])
        self.metrics.batch_size.observe(len(records))
        for topic, count in Counter(record.topic for record in records).items():
            self.metrics.tickets_in.labels(topic=topic).inc(count)
        for index, record in enumerate(records):
            try:
                ticket = decode_ticket(record.value, self.settings.max_message_bytes)
            except TicketRejected as rejected:
                batch.dead[index] = self.dead_letter(record, rejected.info, rejected.ticket_id)
                batch.tickets.append(None)
                batch.keys.append(None)
                continue
            batch.tickets.append(ticket)
            batch.keys.append(self.cache.key(predictor.version, ticket.text))
        wanted = list(dict.fromkeys(k for k in batch.keys if k is not None))
        batch.found = await self.cache.get_many(wanted)
        for key, valid in zip(batch.keys, batch.tickets, strict=True):
            if key is not None and valid is not None and key not in batch.found:
                batch.missing.setdefault(key, valid.text)
        if wanted and self.cache.active:
            looked_up = [k for k in batch.keys if k is not None]
            hits = sum(1 for k in looked_up if k in batch.found)
            self.metrics.on_cache_lookup(hits, len(looked_up) - hits)
        return batch

    async def classify(self, batch: PreparedBatch) -> list[OutRecord]:
        """Run the model on the distinct cache misses, then build every output record in input order."""
        computed, failures = await self._run_model(batch.predictor, batch.missing)
        self.cache.put_many(computed)
        out: list[OutRecord] = []
        labels: Counter[tuple[str, str]] = Counter()
        topics = self.settings.topics
        for index, record in enumerate(batch.records):
            if index in batch.dead:
                out.append(batch.dead[index])
                continue
            ticket, key = batch.tickets[index], batch.keys[index]
            assert ticket is not None and key is not None
            if key in failures:
                out.append(self.dead_letter(record, failures[key], ticket.ticket_id))
                continue
            triage = computed.get(key)
            if triage is None:
                triage = batch.found[key].model_copy(update={"cached": True})
            labels[triage.category.value, triage.priority.value] += 1
            out.extend(enriched_records(ticket, triage, topics, record))
        for (category, priority), count in labels.items():
            self.metrics.tickets_triaged.labels(category=category, priority=priority).inc(count)
        return out

    async def _run_model(
        self, predictor: Predictor, missing: dict[str, str]
    ) -> tuple[dict[str, Triage], dict[str, ErrorInfo]]:
        if not missing:
            return {}, {}
        keys, texts = list(missing), list(missing.values())
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, predictor.predict, texts)
            if len(results) != len(texts):
                raise RuntimeError(f"predictor returned {len(results)} results for {len(texts)} texts")
        except Exception as exc:  # noqa: BLE001 - any model failure is isolated per ticket below
            log.error("inference_failed", size=len(texts), error=type(exc).__name__)
            return await loop.run_in_executor(self._executor, _predict_each, predictor, keys, texts)
        finally:
            self.metrics.inference_seconds.observe(time.perf_counter() - started)
        return dict(zip(keys, results, strict=True)), {}

    def dead_letter(self, record: InRecord, error: ErrorInfo, ticket_id: str | None) -> OutRecord:
        """The dead-letter record of one input, counted and logged (without its text)."""
        self.metrics.dead_letters.labels(reason=error.code.value).inc()
        log.info(
            "dead_letter",
            reason=error.code.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            ticket_id=ticket_id,
            size=len(record.value or b""),
        )
        return dead_letter_record(
            record,
            error,
            self.settings.topics.deadletter,
            ticket_id=ticket_id,
            max_payload_bytes=self.settings.deadletter_payload_bytes,
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)


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
