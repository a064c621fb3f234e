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


def _invalid_json(ticket_id: str, text: str) -> bytes:
    whole = json.dumps({"ticket_id": ticket_id, "text": text}).encode()
    return whole[: max(len(whole) // 2, 3)]


def _not_an_object(ticket_id: str, text: str) -> bytes:
    return json.dumps([ticket_id, text]).encode()


def _missing_text(ticket_id: str, text: str) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "channel": "email"}).encode()


def _empty_text(ticket_id: str, text: str) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "text": " \t\u0007 "}).encode()


def _wrong_type(ticket_id: str, text: str) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "text": len(text)}).encode()


def _invalid_utf8(ticket_id: str, text: str) -> bytes:
    return b'{"ticket_id": "' + ticket_id.encode() + b'", "text": "\xff\xfe bad bytes"}'


def _empty_message(ticket_id: str, text: str) -> bytes:
    return b""


_BUILDERS: dict[str, tuple[Callable[[str, str], bytes], ErrorCode]] = {
    "invalid_json": (_invalid_json, ErrorCode.INVALID_JSON),
    "not_an_object": (_not_an_object, ErrorCode.NOT_AN_OBJECT),
    "missing_text": (_missing_text, ErrorCode.MISSING_FIELD),
    "empty_text": (_empty_text, ErrorCode.EMPTY_TEXT),
    "wrong_type": (_wrong_type, ErrorCode.INVALID_FIELD),
    "invalid_utf8": (_invalid_utf8, ErrorCode.INVALID_UTF8),
    "empty_message": (_empty_message, ErrorCode.EMPTY_MESSAGE),
}
MALFORMED_KINDS = tuple(_BUILDERS)


def make_malformed(rng: random.Random, ticket_id: str, text: str) -> Malformed:
    """A random kind of bad message; the id (unique per run) keeps most payloads, so their hashes, unique."""
    kind = rng.choice(MALFORMED_KINDS)
    build, code = _BUILDERS[kind]
    return Malformed(kind=kind, payload=build(ticket_id, text), expected_code=code)
