"""Turn raw Kafka bytes into a ``Ticket`` or a precise, machine-readable rejection."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from schemas.enums import ErrorCode
from schemas.messages import ErrorInfo, Ticket

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES", "MAX_JSON_DEPTH", "TicketRejected", "decode_object", "decode_ticket", "guess_ticket_id"
]

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_PYDANTIC_CODES = {
    "missing": ErrorCode.MISSING_FIELD,
    "empty_text": ErrorCode.EMPTY_TEXT,
    "text_too_long": ErrorCode.TEXT_TOO_LONG,
}


class TicketRejected(Exception):
    """A message that can never become a ticket; carries the dead-letter reason."""

    def __init__(self, code: ErrorCode, message: str, ticket_id: str | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.info = ErrorInfo(code=code, message=message)
        self.ticket_id = ticket_id


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise TicketRejected(ErrorCode.DUPLICATE_KEY, f"duplicate JSON keys: {dupes[:5]}")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise TicketRejected(ErrorCode.INVALID_JSON, f"non-standard JSON constant {name}")


def _depth_exceeds(raw: str, limit: int) -> bool:
    """Cheap bracket scan (strings skipped) so hostile nesting never reaches the recursive parser."""
    if raw.count("[") + raw.count("{") <= limit:
        return False  # fast path: too few brackets in total to nest deeper than the limit
    depth, in_string, escaped = 0, False, False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _has_lone_surrogate(obj: Any) -> bool:
    """Escaped lone surrogates parse fine but make every later JSON encode fail; catch them at the door."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def guess_ticket_id(obj: Any) -> str | None:
    """The ticket id of a rejected message when one is readable, so the dead letter can be traced."""
    if isinstance(obj, dict):
        value = obj.get("ticket_id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            candidate = str(value)[:128]
            try:
                candidate.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate could never be a Kafka key or a JSON string
                return None
            return candidate
    return None


def decode_object(raw: bytes | None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Parse one raw message into a JSON object, refusing everything hostile or malformed before any model sees it.

    Args:
        raw: The Kafka record value, exactly as received.
        max_bytes: Messages larger than this are rejected before parsing, to protect memory.

    Raises:
        TicketRejected: With the error code and a human-readable reason.
    """
    if not raw:
        raise TicketRejected(ErrorCode.EMPTY_MESSAGE, "message has no value")
    if len(raw) > max_bytes:
        raise TicketRejected(ErrorCode.MESSAGE_TOO_LARGE, f"message is {len(raw)} bytes, limit {max_bytes}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TicketRejected(ErrorCode.INVALID_UTF8, f"not UTF-8 at byte {exc.start}") from None
    if _depth_exceeds(text, MAX_JSON_DEPTH):
        raise TicketRejected(ErrorCode.TOO_DEEPLY_NESTED, f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        obj = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise TicketRejected(ErrorCode.INVALID_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise TicketRejected(ErrorCode.TOO_DEEPLY_NESTED, "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. integers longer than Python's 4,300-digit conversion limit
        raise TicketRejected(ErrorCode.INVALID_JSON, f"unparseable JSON value: {str(exc)[:80]}") from None
    if not isinstance(obj, dict):
        raise TicketRejected(ErrorCode.NOT_AN_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(obj):
        raise TicketRejected(
            ErrorCode.INVALID_UTF8, "a \\u escape encodes a lone surrogate, which no UTF-8 output can carry",
            ticket_id=guess_ticket_id(obj),
        )
    return obj


def decode_ticket(raw: bytes | None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Ticket:
    """Validate one raw message (``decode_object``, then the ``Ticket`` model).

    Returns:
        The validated ticket.

    Raises:
        TicketRejected: With the error code and a human-readable reason.
    """
    obj = decode_object(raw, max_bytes)
    try:
        return Ticket.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        code = _PYDANTIC_CODES.get(first["type"], ErrorCode.INVALID_FIELD)
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise TicketRejected(code, f"{where}: {first['msg']}", ticket_id=guess_ticket_id(obj)) from None
