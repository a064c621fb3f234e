"""Where cached triage results live: Redis (shared by every worker) or this process's memory (no Redis at all)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import redis.asyncio as aioredis
from cachetools import TTLCache
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from worker.settings import RedisSettings

__all__ = ["CacheStore", "MemoryStore", "RedisStore", "open_store"]

# SET with a TTL for every key in one command: a pipeline of SETs costs a command per ticket. The first
# ARGV[3] keys live ARGV[1] seconds (answers by text), the rest ARGV[2] (idempotency records of tickets).
_SET_MANY = """
local texts = tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 3], 'EX', i <= texts and ARGV[1] or ARGV[2])
end
return #KEYS
"""


class CacheStore(Protocol):
    """A key-value store with one TTL; every call may raise, the cache decides what a failure means."""

    description: str

    async def ping(self) -> None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set_many(self, texts: Mapping[str, str], tickets: Mapping[str, bytes]) -> None: ...

    async def close(self) -> None: ...


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
            retry=Retry(NoBackoff(), 0),
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
            keys=[*texts, *tickets], args=[*self._ttls, len(texts), *texts.values(), *tickets.values()]
        )

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


def open_store(settings: RedisSettings) -> CacheStore:
    """The store ``settings.backend`` names; building one does no I/O."""
    if settings.backend == "memory":
        return MemoryStore(settings)
    return RedisStore(settings)
