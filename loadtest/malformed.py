"""Bad messages the replay injects to exercise the dead-letter path, each with the error it must produce."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from schemas.enums import ErrorCode

__all__ = ["MALFORMED_KINDS", "Malformed", "make_malformed"]


@dataclass(frozen=True)
class Malformed:
    """A bad payload and the dead-letter code the worker must give it."""

    kind: str
    payload: bytes
    expected_code: ErrorCode


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _truncated(ticket_id: str, text: str) -> bytes:
    whole = _json({"ticket_id": ticket_id, "text": text})
    return whole[: max(len(whole) // 2, 3)]


# kind → (payload from the ticket id and a real text, the code it must get); the id keeps most payloads unique.
_BUILDERS: dict[str, tuple[Callable[[str, str], bytes], ErrorCode]] = {
    "invalid_json": (_truncated, ErrorCode.INVALID_JSON),
    "not_an_object": (lambda i, t: _json([i, t]), ErrorCode.NOT_AN_OBJECT),
    "missing_text": (lambda i, t: _json({"ticket_id": i, "channel": "email"}), ErrorCode.MISSING_FIELD),
    "empty_text": (lambda i, t: _json({"ticket_id": i, "text": " \t\u0007 "}), ErrorCode.EMPTY_TEXT),
    "wrong_type": (lambda i, t: _json({"ticket_id": i, "text": len(t)}), ErrorCode.INVALID_FIELD),
    "invalid_utf8": (lambda i, t: b'{"ticket_id": "' + i.encode() + b'", "text": "\xff\xfe bad bytes"}',
                     ErrorCode.INVALID_UTF8),
    "empty_message": (lambda i, t: b"", ErrorCode.EMPTY_MESSAGE),
}
MALFORMED_KINDS = tuple(_BUILDERS)


def make_malformed(rng: random.Random, ticket_id: str, text: str) -> Malformed:
    """A random kind of bad message; the id (unique per run) keeps most payloads, so their hashes, unique."""
    kind = rng.choice(MALFORMED_KINDS)
    build, code = _BUILDERS[kind]
    return Malformed(kind=kind, payload=build(ticket_id, text), expected_code=code)
