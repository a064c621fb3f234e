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

# SET with a TTL for every key in one command: a pipeline of SETs costs a command per ticket.
_SET_MANY = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""


class CacheStore(Protocol):
    """A key-value store with one TTL; every call may raise, the cache decides what a failure means."""

    description: str

    async def ping(self) -> None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set_many(self, values: Mapping[str, str | bytes]) -> None: ...

    async def close(self) -> None: ...


class RedisStore:
    """One MGET per lookup and one scripted command per store, so a batch costs two round trips."""

    def __init__(self, settings: RedisSettings) -> None:
        timeout = settings.timeout_ms / 1000.0
        self._ttl_s = settings.ttl_s
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

    async def set_many(self, values: Mapping[str, str | bytes]) -> None:
        await self._set_many(keys=list(values), args=[self._ttl_s, *values.values()])

    async def close(self) -> None:
        await self.client.aclose()


class MemoryStore:
    """A bounded LRU with the same TTL, private to this process: lost on restart, not shared between workers."""

    def __init__(self, settings: RedisSettings) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(maxsize=settings.memory_max_entries, ttl=settings.ttl_s)
        self.description = f"memory (at most {settings.memory_max_entries} entries)"

    async def ping(self) -> None:
        return None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._entries.get(key) for key in keys]

    async def set_many(self, values: Mapping[str, str | bytes]) -> None:
        for key, value in values.items():
            self._entries[key] = value.encode() if isinstance(value, str) else value

    async def close(self) -> None:
        self._entries.clear()


def open_store(settings: RedisSettings) -> CacheStore:
    """The store ``settings.backend`` names; building one does no I/O."""
    if settings.backend == "memory":
        return MemoryStore(settings)
    return RedisStore(settings)
