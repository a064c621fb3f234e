"""The join store: what was published per ticket, in Redis under a TTL, plus one claim per feedback message.

Redis rather than a Faust table: the published record must live for days (as long as tickets stay open), a
table's RocksDB state and changelog would have to be rebuilt on every rebalance and restart, and Redis' TTL
bounds the store by itself. The claim (``SET NX``) makes each feedback message count once across redeliveries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis

from feedback.join import Published
from feedback.settings import JoinStoreSettings

__all__ = ["JoinStore", "claim_key"]


def claim_key(prefix: str, ticket_id: str, raw: bytes) -> str:
    """Key of one feedback message's outcome: its ticket and a hash of its exact bytes."""
    return f"{prefix}:claim:{ticket_id}:{hashlib.sha256(raw).hexdigest()[:16]}"


class JoinStore:
    """Published triage per ticket (``<prefix>:pub:<ticket_id>``) and feedback claims, both expiring after ``ttl_s``."""

    def __init__(self, settings: JoinStoreSettings) -> None:
        self.settings = settings
        password = settings.password.get_secret_value() if settings.password else None
        self.client = aioredis.Redis.from_url(settings.url, password=password)

    def _pub_key(self, ticket_id: str) -> str:
        return f"{self.settings.key_prefix}:pub:{ticket_id}"

    async def remember(self, records: Sequence[tuple[str, Published]]) -> None:
        """Store the latest published triage of each ticket (a re-published ticket overwrites its record)."""
        if not records:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for ticket_id, published in records:
                pipe.set(self._pub_key(ticket_id), published.dumps(), ex=self.settings.ttl_s)
            await pipe.execute()

    async def lookup(self, ticket_ids: Sequence[str]) -> list[Published | None]:
        if not ticket_ids:
            return []
        values = await self.client.mget([self._pub_key(t) for t in ticket_ids])  # bytes: no decode_responses
        return [None if value is None else Published.loads(cast(bytes, value)) for value in values]

    async def claim(self, ticket_id: str, raw: bytes, outcome: str) -> bool:
        """Record this message's outcome; False when it was already recorded (a redelivery after a restart)."""
        key = claim_key(self.settings.key_prefix, ticket_id, raw)
        return bool(await self.client.set(key, outcome, nx=True, ex=self.settings.ttl_s))

    async def close(self) -> None:
        await self.client.aclose()
