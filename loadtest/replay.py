"""Produce a replay source onto the input topic as live tickets: the seeded message plan and its pacing."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from loadtest.ledger import Ledger, Tracked
from loadtest.source import SourceRecord, Truth
from schemas.enums import ErrorCode
from schemas.messages import text_hash
from trainer.offtopic import offtopic_texts

__all__ = ["MALFORMED", "OFFTOPIC", "Planned", "ReplayConfig", "ReplayStats", "Replayer", "new_run_id", "plan_messages"]

log = structlog.get_logger(__name__)

OFFTOPIC = "offtopic"
"""``metadata.loadtest.kind`` of a generated off-topic ticket: how the report finds them, never by text."""

_OFFTOPIC_SET = 800  # distinct generated texts, 100 per family, cycled through by sequence number


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


MALFORMED: dict[str, tuple[Callable[[str, str], bytes], ErrorCode]] = {
    "invalid_json": (lambda i, t: _json({"ticket_id": i, "text": t})[:-2], ErrorCode.INVALID_JSON),
    "not_an_object": (lambda i, t: _json([i, t]), ErrorCode.NOT_AN_OBJECT),
    "missing_text": (lambda i, t: _json({"ticket_id": i, "channel": "email"}), ErrorCode.MISSING_FIELD),
    "empty_text": (lambda i, t: _json({"ticket_id": i, "text": " \t\u0007 "}), ErrorCode.EMPTY_TEXT),
    "wrong_type": (lambda i, t: _json({"ticket_id": i, "text": len(t)}), ErrorCode.INVALID_FIELD),
    "invalid_utf8": (lambda i, t: b'{"ticket_id": "' + i.encode() + b'", "text": "\xff\xfe bad bytes"}',
                     ErrorCode.INVALID_UTF8),
    "empty_message": (lambda i, t: b"", ErrorCode.EMPTY_MESSAGE),
}
"""Bad messages that exercise the dead-letter path: kind → (payload from a ticket id and a real text, the code it
must get). The id, unique per run, keeps most payloads, so their hashes, unique."""


class ReplayConfig(BaseModel):
    """What to replay and how fast; stored in the report so a run can be repeated exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(default="test", description="train, test, or a Ticket JSONL path.")
    rate: float | None = Field(default=100.0, gt=0, description="Mean tickets/s; None sends as fast as possible.")
    count: int | None = Field(default=None, ge=1, description="Messages to send; with duration, whichever ends first.")
    duration: float | None = Field(default=None, gt=0, description="Seconds to keep sending.")
    arrival: Literal["constant", "poisson", "burst"] = "constant"
    burst_size: int = Field(default=50, ge=1, description="Tickets per burst for the burst arrival process.")
    duplicate_ratio: float = Field(default=0.0, ge=0, le=1, description="Share re-sending an earlier text, new id.")
    malformed_ratio: float = Field(default=0.0, ge=0, le=1, description="Share of bad messages (dead-letter path).")
    offtopic_ratio: float = Field(
        default=0.0, ge=0, le=1,
        description="Share of generated off-topic texts (greetings, spam, other domains): none should page.",
    )
    seed: int = 0
    linger_ms: int = Field(default=5, ge=0, description="Producer linger: small batches for throughput.")

    @model_validator(mode="after")
    def _ratios_fit(self) -> ReplayConfig:
        if self.duplicate_ratio + self.malformed_ratio + self.offtopic_ratio > 1:
            raise ValueError("duplicate_ratio + malformed_ratio + offtopic_ratio must not exceed 1")
        return self

    def arrival_offsets(self) -> Iterator[float]:
        """When ticket 0, 1, 2, ... is due, in seconds after the start, for a mean of ``rate`` tickets/s (all at once
        without a rate); ``poisson`` gaps model users arriving independently, seeded so a run can be repeated."""
        if self.rate is None:
            return itertools.repeat(0.0)
        if self.arrival == "poisson":
            rng = random.Random(self.seed)
            return itertools.accumulate((rng.expovariate(self.rate) for _ in itertools.count()), initial=0.0)
        group = self.burst_size if self.arrival == "burst" else 1
        return ((index // group) * group / self.rate for index in itertools.count())


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a random suffix (also the prefix of every ticket id)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Planned:
    """A message to send, minus its send timestamp (added at the moment it goes out)."""

    seq: int
    ticket_id: str
    kind: str
    record: SourceRecord | None = None
    payload: bytes | None = None
    expected_code: ErrorCode | None = None

    @property
    def truth(self) -> Truth | None:
        return self.record.truth if self.record is not None else None

    def encode(self, run_id: str, sent_at: float) -> bytes:
        """The wire bytes: a Ticket carrying run id, send time and ground truth in ``metadata.loadtest``."""
        if self.payload is not None:
            return self.payload
        assert self.record is not None
        fields: dict[str, Any] = {"channel": "replay", **self.record.fields}
        metadata = {**fields.pop("metadata", {})}
        metadata["loadtest"] = {"run": run_id, "seq": self.seq, "sent_at": sent_at, "kind": self.kind,
                                "truth": self.truth and asdict(self.truth)}
        ticket = {**fields, "ticket_id": self.ticket_id, "text": self.record.text,
                  "created_at": datetime.fromtimestamp(sent_at, UTC).isoformat(), "metadata": metadata}
        return json.dumps(ticket, ensure_ascii=False).encode("utf-8")


def plan_messages(records: list[SourceRecord], config: ReplayConfig, run_id: str) -> Iterator[Planned]:
    """The endless, seeded message sequence: the source shuffled (Banking77 files are sorted by intent) and
    reshuffled after each pass, earlier texts re-sent, bad messages and generated off-topic texts mixed in."""
    if not records:
        raise ValueError("the replay source is empty")
    rng = random.Random(config.seed)
    offtopic = [SourceRecord(text, None, {}) for _, text in offtopic_texts(_OFFTOPIC_SET, config.seed)]
    order = list(range(len(records)))
    rng.shuffle(order)
    position = 0
    sent: list[int] = []
    for seq in itertools.count():
        ticket_id = f"{run_id}-{seq:07d}"
        draw = rng.random()
        if draw < config.malformed_ratio:
            text = records[rng.randrange(len(records))].text
            kind = rng.choice(list(MALFORMED))
            build, code = MALFORMED[kind]
            yield Planned(seq, ticket_id, kind, payload=build(ticket_id, text), expected_code=code)
        elif draw < config.malformed_ratio + config.offtopic_ratio:
            yield Planned(seq, ticket_id, OFFTOPIC, record=offtopic[seq % len(offtopic)])
        elif sent and draw < config.malformed_ratio + config.offtopic_ratio + config.duplicate_ratio:
            yield Planned(seq, ticket_id, "duplicate", record=records[rng.choice(sent)])
        else:
            index = order[position]
            position = (position + 1) % len(order)
            if position == 0:
                rng.shuffle(order)
            sent.append(index)
            yield Planned(seq, ticket_id, "ticket", record=records[index])


@dataclass
class ReplayStats:
    sent: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0


class Replayer:
    """Sends planned messages with kafka-python (acks=all, retries, key = ticket id) from one thread."""

    def __init__(self, brokers: list[str], topic: str, records: list[SourceRecord], config: ReplayConfig,
                 ledger: Ledger, run_id: str) -> None:
        self.brokers, self.topic, self.records, self.config = brokers, topic, records, config
        self.ledger, self.run_id = ledger, run_id
        self.stats = ReplayStats()
        self.done = threading.Event()

    @property
    def limit(self) -> int | None:
        """Messages to send: the count, else one pass over the source unless a duration is given."""
        if self.config.count is None and self.config.duration is None:
            return len(self.records)
        return self.config.count

    def run(self, stop: threading.Event) -> ReplayStats:
        """Send until the count or duration is reached or ``stop`` is set; always flushes and closes."""
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.brokers, client_id=f"triage-replay-{self.run_id}", acks="all",
                                 retries=5, linger_ms=self.config.linger_ms)
        limit, duration = self.limit, self.config.duration
        seen_texts: set[str] = set()
        plan = plan_messages(self.records, self.config, self.run_id)
        self.stats.started_at = time.time()
        start = time.monotonic()
        try:
            for planned, offset in zip(itertools.islice(plan, limit), self.config.arrival_offsets(), strict=False):
                if duration is not None and max(offset, time.monotonic() - start) > duration:
                    break
                delay = start + offset - time.monotonic()
                if stop.is_set() or (delay > 0 and stop.wait(delay)):
                    break
                self._send(producer, planned, seen_texts)
            producer.flush(timeout=30)
        finally:
            producer.close(timeout=10)
            self.stats.finished_at = time.time()
            self.done.set()
        log.info("replay_sent", run=self.run_id, sent=self.stats.sent,
                 seconds=round(self.stats.finished_at - self.stats.started_at, 2))
        return self.stats

    def _send(self, producer: Any, planned: Planned, seen_texts: set[str]) -> None:
        sent_at = time.time()
        payload = planned.encode(self.run_id, sent_at)
        repeat = False
        if planned.record is not None:
            digest = text_hash(planned.record.text)
            repeat = digest in seen_texts
            seen_texts.add(digest)
        entry = Tracked(ticket_id=planned.ticket_id, sha256=hashlib.sha256(payload).hexdigest(), sent_at=sent_at,
                        kind=planned.kind, truth=planned.truth, expected_code=planned.expected_code, repeat=repeat)
        self.ledger.register(entry)
        future = producer.send(self.topic, key=planned.ticket_id.encode(), value=payload)
        future.add_callback(lambda meta: self.ledger.mark_acked(entry, True, (meta.partition, meta.offset)))
        future.add_errback(lambda exc: self._on_error(entry, exc))
        self.stats.sent += 1

    def _on_error(self, entry: Tracked, exc: BaseException) -> None:
        self.ledger.mark_acked(entry, False)
        log.warning("replay_send_failed", ticket_id=entry.ticket_id, error=type(exc).__name__)
