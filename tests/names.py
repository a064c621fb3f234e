"""The one factory of unique names in the tests: topics, consumer groups, Redis key prefixes, run and ticket ids.

Tests share one broker and one Redis (and xdist runs two processes against them), so anything a test creates
there needs a name no other test, process or earlier run uses. Fixtures take it as ``unique`` (tests/conftest.py).
"""

from __future__ import annotations

import uuid

__all__ = ["unique_name"]


def unique_name(base: str) -> str:
    """``base`` and a random 8-hex-digit suffix; every name has the same length for a given base.

    The fixed length matters where names are used as prefixes (a run id starts each of its ticket ids): no
    name can be a prefix of another one made from the same base.
    """
    return f"{base}-{uuid.uuid4().hex[:8]}"
