"""The record shapes the pipeline speaks: what came off Kafka, what goes back on, and whether it fits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiokafka import codec

__all__ = ["Compression", "Headers", "InRecord", "OutRecord"]

Headers = list[tuple[str, bytes]]
Compression = Literal["lz4", "zstd", "gzip", "none"]

# A record batch's header plus one record's own framing, rounded up (Kafka's DefaultRecordBatch: 61 + ~20).
_BATCH_OVERHEAD = 96
_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": codec.lz4_encode, "zstd": codec.zstd_encode, "gzip": codec.gzip_encode}


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
    """One record to publish; ``source`` is the input it came from (for latency, tracing and dead letters)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    source: InRecord

    def fits(self, limit: int, compression: Compression) -> bool:
        """Whether this record alone, in a batch compressed as configured, stays within ``limit`` bytes.

        Compressed only when the plain size is over the limit (rare), so the hot path costs a few ``len``.
        """
        framing = _BATCH_OVERHEAD + len(self.key or b"") + sum(len(k) + len(v) for k, v in self.headers)
        if framing + len(self.value) <= limit:
            return True
        encode = _ENCODERS.get(compression)
        return encode is not None and framing + len(encode(self.value)) <= limit
