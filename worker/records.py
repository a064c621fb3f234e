"""The two record shapes the pipeline speaks: what came off Kafka and what goes back on."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Headers", "InRecord", "OutRecord"]

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class InRecord:
    """One consumed message, exactly as received."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to publish; ``source`` is the input it came from (for latency and tracing)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    source: InRecord
