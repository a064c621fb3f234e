"""decode_ticket: every way a raw message can fail maps to one machine-readable code."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ErrorCode, Ticket, TicketRejected, decode_ticket


def ticket_bytes(**fields: object) -> bytes:
    return json.dumps({"ticket_id": "T-1", "text": "my card was stolen", **fields}).encode()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", ErrorCode.EMPTY_MESSAGE),
        (None, ErrorCode.EMPTY_MESSAGE),
        (b"\xff\xfe\x00garbage", ErrorCode.INVALID_UTF8),
        (b'{"ticket_id": "T", "text": "hi"', ErrorCode.INVALID_JSON),
        (b"not json at all", ErrorCode.INVALID_JSON),
        (b'{"ticket_id": "T", "text": NaN}', ErrorCode.INVALID_JSON),
        (b"[1, 2, 3]", ErrorCode.NOT_AN_OBJECT),
        (b'"just a string"', ErrorCode.NOT_AN_OBJECT),
        (b"[" * 10_000 + b"]" * 10_000, ErrorCode.TOO_DEEPLY_NESTED),
        (b'{"ticket_id": "T", "text": "a", "text": "b"}', ErrorCode.DUPLICATE_KEY),
        (b'{"text": "hello"}', ErrorCode.MISSING_FIELD),
        (b'{"ticket_id": "T"}', ErrorCode.MISSING_FIELD),
        (b'{"ticket_id": 12345, "text": "hello"}', ErrorCode.INVALID_FIELD),
        (b'{"ticket_id": "T", "text": ["a"]}', ErrorCode.INVALID_FIELD),
        (b'{"ticket_id": "T", "text": "hi", "metadata": "oops"}', ErrorCode.INVALID_FIELD),
        (b'{"ticket_id": "T", "text": "   "}', ErrorCode.EMPTY_TEXT),
        (json.dumps({"ticket_id": "T", "text": "x" * 10_001}).encode(), ErrorCode.TEXT_TOO_LONG),
    ],
)
def test_bad_messages_map_to_their_reason(raw: bytes | None, code: ErrorCode) -> None:
    with pytest.raises(TicketRejected) as info:
        decode_ticket(raw)
    assert info.value.info.code == code
    assert info.value.info.message


def test_messages_over_the_byte_limit_are_rejected_before_parsing() -> None:
    raw = ticket_bytes(metadata={"blob": "x" * 2000})
    with pytest.raises(TicketRejected) as info:
        decode_ticket(raw, max_bytes=1000)
    assert info.value.info.code == ErrorCode.MESSAGE_TOO_LARGE
    assert decode_ticket(raw, max_bytes=10_000).ticket_id == "T-1"


def test_rejection_carries_the_ticket_id_when_readable() -> None:
    with pytest.raises(TicketRejected) as info:
        decode_ticket(b'{"ticket_id": "T-9", "text": ""}')
    assert info.value.ticket_id == "T-9"


def test_utf8_bom_is_tolerated() -> None:
    assert decode_ticket(b"\xef\xbb\xbf" + ticket_bytes()).ticket_id == "T-1"


def test_deep_but_reasonable_metadata_is_accepted() -> None:
    nested: object = "leaf"
    for _ in range(20):
        nested = {"n": nested}
    assert decode_ticket(ticket_bytes(metadata=nested)).metadata["n"]["n"]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert decode_ticket(ticket_bytes(text="[[[[" * 100 + "{{{{" * 100)).ticket_id == "T-1"


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)  # a busy 2-core machine overruns the 200 ms default
def test_random_bytes_never_raise_anything_but_a_rejection(raw: bytes) -> None:
    try:
        assert isinstance(decode_ticket(raw), Ticket)
    except TicketRejected as exc:
        assert isinstance(exc.info.code, ErrorCode)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)


@given(st.dictionaries(st.sampled_from(["ticket_id", "text", "metadata", "created_at", "channel", "x"]),
                       json_values, max_size=6))
@settings(max_examples=300, deadline=None)  # a busy 2-core machine overruns the 200 ms default
def test_random_json_objects_never_raise_anything_but_a_rejection(obj: dict[str, object]) -> None:
    try:
        ticket = decode_ticket(json.dumps(obj).encode())
        assert ticket.text and ticket.ticket_id
    except TicketRejected as exc:
        assert isinstance(exc.info.code, ErrorCode)


def test_an_unencodable_ticket_id_is_not_offered_for_the_dead_letter_key() -> None:
    with pytest.raises(TicketRejected) as info:
        decode_ticket(b'{"ticket_id": "T\\ud800", "text": "hi"}')
    assert info.value.ticket_id is None
