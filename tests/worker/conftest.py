"""Fixtures of the worker tests; the helpers they use live in ``tests/worker/kit.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the real Redis, for looking at what the worker cached."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
