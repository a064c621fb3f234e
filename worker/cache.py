"""Cache of triage results for repeated texts: one round trip per batch, never in the way.

The store is Redis (shared by every worker) or this process's memory (no Redis at all); every store call may
raise, and ``TriageCache`` decides what a failure means.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis
import structlog
from cachetools import TTLCache
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from schemas.messages import Triage
from worker.metrics import WorkerMetrics
from worker.settings import RedisSettings

__all__ = ["MemoryStore", "RedisStore", "TriageCache", "cache_key", "ticket_key"]

log = structlog.get_logger(__name__)

_STORE_FAILURES = (aioredis.RedisError, OSError, asyncio.TimeoutError)

# SET with a TTL for every key in one command: a pipeline of SETs costs a command per ticket. The first
# ARGV[3] keys live ARGV[1] seconds (answers by text), the rest ARGV[2] (idempotency records of tickets).
_SET_MANY = """
local texts = tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 3], 'EX', i <= texts and ARGV[1] or ARGV[2])
end
return #KEYS
"""


class RedisStore:
    """One MGET per lookup and one scripted command per store, so a batch costs two round trips."""

    def __init__(self, settings: RedisSettings) -> None:
        timeout = settings.timeout_ms / 1000.0
        self._ttls = (settings.ttl_s, settings.ticket_ttl_s)
        self.client = aioredis.Redis.from_url(
            settings.url,
            password=settings.password_value(),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate retry of a connection error, on a new connection: after an outage every pooled
            # connection is dead, and without it each one costs a failed batch lookup once Redis is back.
            retry=Retry(NoBackoff(), 1, supported_errors=(aioredis.ConnectionError,)),
        )
        self._set_many: AsyncScript = self.client.register_script(_SET_MANY)
        self.description = "redis"

    async def ping(self) -> None:
        await self.client.ping()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = await self.client.mget(keys)  # bytes, or None for a missing key (no decode_responses)
        return [value if isinstance(value, bytes) else None for value in values]

    async def set_many(self, texts: Mapping[str, str], tickets: Mapping[str, bytes]) -> None:
        await self._set_many(
            keys=[*texts, *tickets], args=[*self._ttls, len(texts), *texts.values(), *tickets.values()])

    async def close(self) -> None:
        await self.client.aclose()


class MemoryStore:
    """Bounded LRUs with the same TTLs, private to this process: lost on restart, not shared between workers."""

    def __init__(self, settings: RedisSettings) -> None:
        size = settings.memory_max_entries
        self._texts: TTLCache[str, bytes] = TTLCache(maxsize=size, ttl=settings.ttl_s)
        self._tickets: TTLCache[str, bytes] = TTLCache(maxsize=size, ttl=settings.ticket_ttl_s)
        self.description = f"memory (at most {size} entries of each kind)"

    async def ping(self) -> None:
        return None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._texts.get(key) or self._tickets.get(key) for key in keys]

    async def set_many(self, texts: Mapping[str, str], tickets: Mapping[str, bytes]) -> None:
        for key, value in texts.items():
            self._texts[key] = value.encode()
        self._tickets.update(tickets)

    async def close(self) -> None:
        self._texts.clear()
        self._tickets.clear()


def cache_key(prefix: str, model_version: str, text: str) -> str:
    """``<prefix>:<model version>:<sha256 of the text>``; a new model version never reads old answers.

    ``text`` must already be normalised (``Ticket.text`` is), so this equals ``schemas.text_hash(text)``
    without normalising a second time on the hot path.
    """
    return f"{prefix}:{model_version}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def ticket_key(prefix: str, model_version: str, ticket_id: str, text: str) -> str:
    """``<prefix>-ticket:<model version>:<sha256(ticket_id NUL sha256(text))>``: one ticket's published triage.

    Kept out of the ``<prefix>:`` text-cache key space, whose keys hold only text hashes. ``text`` must
    already be normalised, as for ``cache_key``.
    """
    text_digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    digest = hashlib.sha256(f"{ticket_id}\0{text_digest}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}-ticket:{model_version}:{digest}"


class TriageCache:
    """Looks up and stores ``Triage`` results; store trouble turns it off for a while, never raises.

    Two kinds of entries: per text (``key``: the answer for any ticket with that text) and per ticket
    (``ticket_key``: the exact triage JSON published for that ticket, so a replayed ticket is published
    again byte for byte). Values are ``Triage`` JSON only (labels and scores); ticket text is never
    stored, and keys hold only hashes.
    """

    def __init__(self, settings: RedisSettings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self._metrics = metrics
        self._timeout = settings.timeout_ms / 1000.0
        self._store: RedisStore | MemoryStore | None = None
        self._down_until = 0.0
        self._answered = False
        metrics.cache_available.set(1 if settings.enabled else 0)

    def key(self, model_version: str, text: str) -> str:
        return cache_key(self.settings.key_prefix, model_version, text)

    def ticket_key(self, model_version: str, ticket_id: str, text: str) -> str:
        return ticket_key(self.settings.key_prefix, model_version, ticket_id, text)

    @property
    def active(self) -> bool:
        """Enabled and not resting after a failure."""
        return self.settings.enabled and time.monotonic() >= self._down_until

    @property
    def available(self) -> bool:
        """Enabled and the last store call succeeded."""
        return self.settings.enabled and self._answered

    def _opened(self) -> RedisStore | MemoryStore:
        """The store ``settings.backend`` names, built on first use (building one does no I/O)."""
        if self._store is None:
            self._store = MemoryStore(self.settings) if self.settings.backend == "memory" else RedisStore(self.settings)
        return self._store

    async def connect(self) -> None:
        """Open a connection before the first batch: a cold connect may take longer than a lookup may."""
        if not self.settings.enabled:
            return
        try:
            await asyncio.wait_for(self._opened().ping(), max(1.0, self._timeout))
        except _STORE_FAILURES as exc:
            self._on_failure("connect", exc)
        else:
            self._on_success()
            log.info("cache_connected", backend=self._opened().description, key_prefix=self.settings.key_prefix,
                     ttl_s=self.settings.ttl_s)
            if self.settings.backend == "memory":
                log.warning("cache_in_process", detail="not shared between workers and lost on restart")

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Stored values of the given keys (one round trip); an empty dict when the store is unavailable."""
        if not keys or not self.active:
            return {}
        try:
            values = await asyncio.wait_for(self._opened().get_many(keys), self._timeout)
        except _STORE_FAILURES as exc:
            self._on_failure("get", exc)
            return {}
        self._on_success()
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    async def put_many(self, texts: Mapping[str, Triage], tickets: Mapping[str, bytes]) -> None:
        """Store text results (TTL ``ttl_s``) and per-ticket triage JSON (``ticket_ttl_s``) in one scripted command.

        Awaited before a batch is produced: a worker killed between producing and committing then finds
        what it published when the tickets are replayed.
        """
        if not (texts or tickets) or not self.active:
            return
        answers = {key: triage.model_dump_json(exclude={"cached", "latency_ms"}) for key, triage in texts.items()}
        try:
            await asyncio.wait_for(self._opened().set_many(answers, tickets), self._timeout)
        except _STORE_FAILURES as exc:
            self._on_failure("set", exc)
        else:
            self._on_success()

    def _on_failure(self, operation: str, exc: BaseException) -> None:
        self._metrics.cache_errors.labels(operation=operation).inc()
        if self._down_until == 0.0 or time.monotonic() >= self._down_until:
            log.warning("cache_unavailable", operation=operation, error=type(exc).__name__, detail=str(exc)[:200],
                        retry_in_s=self.settings.retry_interval_s)
        self._down_until = time.monotonic() + self.settings.retry_interval_s
        self._answered = False
        self._metrics.cache_available.set(0)

    def _on_success(self) -> None:
        if self._down_until:
            log.info("cache_recovered")
            self._down_until = 0.0
        self._answered = True
        self._metrics.cache_available.set(1)

    async def close(self) -> None:
        """Drop the connections."""
        if self._store is not None:
            await self._store.close()
            self._store = None
