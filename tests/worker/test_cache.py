"""The cache against the real Redis and in memory: round trip, key shape, TTL, and life without Redis."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import redis

from loadtest.broker import free_port
from schemas.enums import Priority
from schemas.messages import Confidence, IntentScore, Triage, text_hash
from worker.cache import TriageCache, cache_key, ticket_key
from worker.metrics import WorkerMetrics
from worker.settings import RedisSettings


def make_triage(version: str = "v1") -> Triage:
    return Triage(
        category="Billing",
        priority=Priority.MEDIUM,
        intent="card_payment_fee_charged",
        confidence=Confidence(category=0.9, intent=0.6, priority=0.8),
        top_intents=[IntentScore(intent="card_payment_fee_charged", probability=0.6)],
        needs_review=False,
        model_version=version,
        latency_ms=12.5,
    )


def test_key_is_prefix_version_and_text_hash() -> None:
    text = "Why was I charged twice?"
    assert cache_key("p", "v7", text) == f"p:v7:{hashlib.sha256(text.encode()).hexdigest()}"
    assert cache_key("p", "v7", text).endswith(text_hash(text))
    assert cache_key("p", "v7", text) != cache_key("p", "v8", text)


def test_ticket_key_is_per_ticket_and_outside_the_text_key_space() -> None:
    text = "Why was I charged twice?"
    digest = hashlib.sha256(f"t-1\0{text_hash(text)}".encode()).hexdigest()
    assert ticket_key("p", "v7", "t-1", text) == f"p-ticket:v7:{digest}"
    assert ticket_key("p", "v7", "t-1", text) != ticket_key("p", "v7", "t-2", text)
    assert ticket_key("p", "v7", "t-1", text) != ticket_key("p", "v8", "t-1", text)
    assert ticket_key("p", "v7", "t-1", text) != ticket_key("p", "v7", "t-1", text + "!")


def test_a_ticket_record_round_trips_byte_for_byte_and_lives_ticket_ttl_s_not_the_cache_ttl(
    redis_url: str, redis_client: redis.Redis, unique: Callable[[str], str]
) -> None:
    """Idempotency records only have to outlive a redelivery: a day each cost ~40 GB of Redis at 1,000/s."""
    prefix = unique("cache")
    settings = RedisSettings(url=redis_url, key_prefix=prefix, ttl_s=86_400, ticket_ttl_s=120, timeout_ms=2000)
    published = make_triage().model_dump_json().encode()
    key = ticket_key(prefix, "v1", "t-1", "some text")
    text = cache_key(prefix, "v1", "some text")

    async def run() -> dict[str, bytes]:
        cache = TriageCache(settings, WorkerMetrics())
        try:
            await cache.put_many({text: make_triage()}, {key: published})
            return await cache.get_many([key])
        finally:
            await cache.close()

    try:
        assert asyncio.run(run()) == {key: published}
        assert 0 < redis_client.ttl(key) <= 120
        assert redis_client.ttl(text) > 86_000, "answers by text keep the cache's TTL"
    finally:
        redis_client.delete(key, text)


def test_round_trip_with_ttl_and_no_text(
    redis_url: str, redis_client: redis.Redis, unique: Callable[[str], str]
) -> None:
    prefix = unique("cache")
    settings = RedisSettings(url=redis_url, key_prefix=prefix, ttl_s=120, timeout_ms=2000)
    text = "I was charged twice for one coffee"

    async def run() -> dict[str, Triage]:
        writer = TriageCache(settings, WorkerMetrics())
        key = writer.key("v1", text)
        assert await writer.get_many([key]) == {}
        await writer.put_many({key: make_triage()}, {})
        await writer.close()
        reader = TriageCache(settings, WorkerMetrics())
        try:
            found = await reader.get_many([key, writer.key("v2", text)])
            return {k: Triage.model_validate_json(v) for k, v in found.items()}
        finally:
            await reader.close()

    try:
        found = asyncio.run(run())
        key = cache_key(prefix, "v1", text)
        assert list(found) == [key]
        assert found[key].category == "Billing" and found[key].latency_ms == 0.0
        assert 0 < redis_client.ttl(key) <= 120
        stored = redis_client.get(key)
        assert stored is not None and b"coffee" not in stored
    finally:
        for k in redis_client.scan_iter(f"{prefix}:*"):
            redis_client.delete(k)


def test_unreachable_redis_turns_the_cache_off_for_a_while() -> None:
    metrics = WorkerMetrics()
    settings = RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", timeout_ms=200, retry_interval_s=0.3)

    async def run() -> None:
        cache = TriageCache(settings, metrics)
        await cache.connect()
        assert not cache.active
        assert await cache.get_many(["a"]) == {}
        await asyncio.sleep(0.35)
        assert cache.active, "tries Redis again after retry_interval_s"
        assert await cache.get_many(["a"]) == {}
        assert not cache.active
        await cache.close()

    asyncio.run(run())
    assert metrics.cache_available._value.get() == 0
    assert metrics.cache_errors.labels(operation="connect")._value.get() == 1
    assert metrics.cache_errors.labels(operation="get")._value.get() == 1


def test_disabled_cache_never_calls_redis() -> None:
    """Pointed at a port nothing listens on: any call would fail and be counted."""
    settings = RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", enabled=False, timeout_ms=200)
    metrics = WorkerMetrics()

    async def run() -> dict[str, bytes]:
        cache = TriageCache(settings, metrics)
        await cache.connect()
        await cache.put_many({"k": make_triage()}, {"t": b"{}"})
        found = await cache.get_many(["k", "t"])
        await cache.close()
        return found

    assert asyncio.run(run()) == {}
    for operation in ("connect", "set", "get"):
        assert metrics.cache_errors.labels(operation=operation)._value.get() == 0, operation
    assert metrics.cache_available._value.get() == 0


def test_memory_backend_round_trips_without_redis_and_keeps_its_bounds() -> None:
    settings = RedisSettings(
        url=f"redis://127.0.0.1:{free_port()}/0", backend="memory", ttl_s=1, ticket_ttl_s=1, memory_max_entries=2
    )
    metrics = WorkerMetrics()
    published = make_triage().model_dump_json().encode()

    async def run() -> None:
        cache = TriageCache(settings, metrics)
        await cache.connect()
        assert cache.available
        await cache.put_many({"a": make_triage()}, {"t": published})
        found = await cache.get_many(["a", "t", "missing"])
        assert found["t"] == published and set(found) == {"a", "t"}
        assert Triage.model_validate_json(found["a"]).latency_ms == 0.0
        await cache.put_many({"b": make_triage(), "c": make_triage()}, {})
        assert set(await cache.get_many(["a", "t", "b", "c"])) == {"t", "b", "c"}, "least recently used goes first"
        await asyncio.sleep(1.1)
        assert await cache.get_many(["t", "b"]) == {}, "entries expire after their TTL"
        await cache.close()

    asyncio.run(run())
    assert metrics.cache_errors.labels(operation="connect")._value.get() == 0
    assert metrics.cache_available._value.get() == 1
