"""What was sent and what came back: the record the producer and the collector share within one run."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Literal

from loadtest.source import Truth
from schemas.enums import ErrorCode
from schemas.messages import Triage

__all__ = ["Ledger", "Tracked"]


@dataclass
class Tracked:
    """One produced message: what it should become and, once seen, what it became."""

    ticket_id: str
    sha256: str
    sent_at: float
    kind: str
    truth: Truth | None = None
    expected_code: ErrorCode | None = None
    repeat: bool = False
    acked: bool | None = None
    position: tuple[int, int] | None = None  # (partition, offset) the broker gave it
    enriched_at: float | None = None
    triage: Triage | None = None
    deadlettered_at: float | None = None
    dead_code: ErrorCode | None = None
    deliveries: Counter[str] = field(default_factory=Counter)

    @property
    def malformed(self) -> bool:
        """A bad message, sent to be dead-lettered with ``expected_code``."""
        return self.expected_code is not None

    @property
    def outcome(self) -> Literal["enriched", "deadletter"] | None:
        """``enriched`` wins over ``deadletter`` if both were seen (then the report flags it)."""
        if self.enriched_at is not None:
            return "enriched"
        return "deadletter" if self.deadlettered_at is not None else None

    @property
    def seen_at(self) -> float | None:
        return self.enriched_at if self.enriched_at is not None else self.deadlettered_at

    @property
    def latency_ms(self) -> float | None:
        """End to end: when its outcome was seen minus the send timestamp in its metadata."""
        return None if self.seen_at is None else (self.seen_at - self.sent_at) * 1000.0


class Ledger:
    """Thread-safe index of produced messages by ticket id and by payload sha256."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[Tracked] = []
        self._by_id: dict[str, Tracked] = {}
        self._by_sha: defaultdict[str, list[Tracked]] = defaultdict(list)
        self.resolved = 0
        self.failed = 0

    def register(self, entry: Tracked) -> None:
        """Record a message just before it is handed to the producer, so no reply can outrun it."""
        with self._lock:
            self.entries.append(entry)
            self._by_id.setdefault(entry.ticket_id, entry)
            self._by_sha[entry.sha256].append(entry)

    def mark_acked(self, entry: Tracked, ok: bool, position: tuple[int, int] | None = None) -> None:
        with self._lock:
            entry.acked, entry.position = ok, position
            self.failed += not ok

    def find(self, ticket_id: str) -> Tracked | None:
        with self._lock:
            return self._by_id.get(ticket_id)

    def on_enriched(self, ticket_id: str, topic: str, triage: Triage | None, seen_at: float) -> Tracked | None:
        """Note one enriched record; returns the entry, or None when it is not from this run."""
        with self._lock:
            entry = self._by_id.get(ticket_id)
            if entry is not None:
                self._delivered(entry, topic)
                if entry.enriched_at is None:
                    entry.enriched_at, entry.triage = seen_at, triage
            return entry

    def on_deadletter(self, sha256: str, ticket_id: str | None, topic: str, code: ErrorCode,
                      seen_at: float) -> Tracked | None:
        """Match a dead letter by payload hash (exact bytes sent), else by the id the worker could read."""
        with self._lock:
            candidates = self._by_sha.get(sha256, [])
            entry = next((c for c in candidates if c.deadlettered_at is None), candidates[0] if candidates else None)
            if entry is None and ticket_id is not None:
                entry = self._by_id.get(ticket_id)
            if entry is not None:
                self._delivered(entry, topic)
                if entry.deadlettered_at is None:
                    entry.deadlettered_at, entry.dead_code = seen_at, code
            return entry

    def _delivered(self, entry: Tracked, topic: str) -> None:
        """Count one delivery on ``topic`` (before its outcome is set): the first of either outcome resolves it."""
        entry.deliveries[topic] += 1
        self.resolved += entry.outcome is None

    @property
    def produced(self) -> int:
        return len(self.entries)

    @property
    def pending(self) -> int:
        """Messages sent (and not failed) that no output has accounted for yet."""
        return len(self.entries) - self.resolved - self.failed
