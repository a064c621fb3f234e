"""Ticket/Triage/EnrichedTicket/DeadLetter: the wire contract."""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import DeadLetter, EnrichedTicket, ErrorCode, ErrorInfo, Priority, Ticket, Triage
from schemas.messages import MAX_TEXT_CHARS, Confidence, IntentScore, normalise_text, text_hash


def make_triage(**overrides: object) -> Triage:
    fields: dict[str, object] = {
        "category": "Billing",
        "priority": Priority.HIGH,
        "intent": "transaction_charged_twice",
        "confidence": Confidence(category=0.9, intent=0.8, priority=0.95),
        "top_intents": [IntentScore(intent="transaction_charged_twice", probability=0.8)],
        "needs_review": False,
        "model_version": "20261125T000000Z-abcdef12",
    }
    fields.update(overrides)
    return Triage.model_validate(fields)


def test_minimal_ticket_gets_defaults() -> None:
    ticket = Ticket(ticket_id="T-1", text="I was charged twice")
    assert ticket.metadata == {}
    assert ticket.customer_id is None and ticket.created_at is None


def test_text_is_cleaned_and_nfc_normalised() -> None:
    decomposed = "Cafe\u0301 card\u0000 blocked\u0007\n"
    ticket = Ticket(ticket_id="T-1", text=f"  {decomposed}  ")
    assert ticket.text == "Café card blocked"
    assert unicodedata.is_normalized("NFC", ticket.text)


def test_newlines_and_tabs_inside_text_are_kept() -> None:
    assert Ticket(ticket_id="T", text="line one\n\tline two").text == "line one\n\tline two"


@pytest.mark.parametrize("text", ["", "   ", "\u0000\u0001", "\n\t  \r"])
def test_empty_text_is_rejected(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        Ticket(ticket_id="T", text=text)
    assert info.value.errors()[0]["type"] == "empty_text"


def test_oversized_text_is_rejected_but_the_limit_itself_is_fine() -> None:
    assert len(Ticket(ticket_id="T", text="x" * MAX_TEXT_CHARS).text) == MAX_TEXT_CHARS
    with pytest.raises(ValidationError) as info:
        Ticket(ticket_id="T", text="x" * (MAX_TEXT_CHARS + 1))
    assert info.value.errors()[0]["type"] == "text_too_long"


@pytest.mark.parametrize("ticket_id", ["", "   ", "x" * 129, 42, None])
def test_bad_ticket_ids_are_rejected(ticket_id: object) -> None:
    with pytest.raises(ValidationError):
        Ticket.model_validate({"ticket_id": ticket_id, "text": "hello"})


def test_created_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValidationError):
        Ticket.model_validate({"ticket_id": "T", "text": "hi", "created_at": "2026-01-01T10:00:00"})
    ticket = Ticket.model_validate({"ticket_id": "T", "text": "hi", "created_at": "2026-01-01T10:00:00+01:00"})
    assert ticket.created_at is not None and ticket.created_at.utcoffset() is not None


def test_unknown_fields_pass_through_untouched_into_the_enriched_ticket() -> None:
    raw = {"ticket_id": "T-7", "text": "lost my card", "crm_case": {"id": 5, "tags": ["vip"]}, "x-trace": "abc"}
    ticket = Ticket.model_validate(raw)
    enriched = EnrichedTicket.from_ticket(ticket, make_triage())
    dumped = json.loads(enriched.model_dump_json())
    assert dumped["crm_case"] == {"id": 5, "tags": ["vip"]}
    assert dumped["x-trace"] == "abc"
    assert dumped["triage"]["category"] == "Billing"
    assert EnrichedTicket.model_validate_json(enriched.model_dump_json()) == enriched


def test_triage_rejects_priorities_outside_the_three() -> None:
    with pytest.raises(ValidationError):
        make_triage(priority="Urgent")


def test_triage_keeps_at_most_three_top_intents() -> None:
    four = [IntentScore(intent=f"i{n}", probability=0.1) for n in range(4)]
    with pytest.raises(ValidationError):
        make_triage(top_intents=four)


def test_priorities_are_exactly_the_product_labels() -> None:
    assert [p.value for p in Priority] == ["High", "Medium", "Low"]


def test_category_is_checked_against_the_served_taxonomy() -> None:
    data = make_triage().model_dump()
    assert Triage.model_validate(data, context={"categories": ("Billing", "Other")}).category == "Billing"
    with pytest.raises(ValidationError, match="not one of the served taxonomy"):
        Triage.model_validate({**data, "category": "Refunds"}, context={"categories": ("Billing", "Other")})
    assert Triage.model_validate({**data, "category": "Refunds"}).category == "Refunds"  # no taxonomy: any name


def test_dead_letter_keeps_utf8_payload_as_text() -> None:
    raw = b'{"ticket_id": "T", "text": ""}'
    letter = DeadLetter.build(
        raw, ErrorInfo(code=ErrorCode.EMPTY_TEXT, message="empty"),
        source_topic="tickets.incoming", source_partition=2, source_offset=17, ticket_id="T",
    )
    assert letter.payload_encoding == "utf-8"
    assert letter.raw_payload() == raw
    assert letter.payload_size == len(raw) and not letter.payload_truncated
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("tickets.incoming", 2, 17)
    assert letter.failed_at.tzinfo is not None


def test_dead_letter_keeps_binary_payload_exactly_as_base64() -> None:
    raw = bytes(range(256))
    letter = DeadLetter.build(
        raw, ErrorInfo(code=ErrorCode.INVALID_UTF8, message="bad"),
        source_topic="t", source_partition=0, source_offset=0,
    )
    assert letter.payload_encoding == "base64"
    assert base64.b64decode(letter.payload) == raw
    assert DeadLetter.model_validate_json(letter.model_dump_json()).raw_payload() == raw


def test_dead_letter_caps_giant_payloads_but_records_their_size_and_hash() -> None:
    raw = b"a" * 5000
    letter = DeadLetter.build(
        raw, ErrorInfo(code=ErrorCode.MESSAGE_TOO_LARGE, message="big"),
        source_topic="t", source_partition=0, source_offset=0, max_payload_bytes=1000,
    )
    assert letter.payload_truncated and letter.payload_size == 5000
    assert letter.raw_payload() == raw[:1000]
    assert len(letter.payload_sha256) == 64


def test_text_hash_is_stable_over_cosmetic_differences_and_hides_the_text() -> None:
    assert text_hash("  my card\u0000 ") == text_hash("my card")
    assert text_hash("my card") != text_hash("my cards")
    assert text_hash("my card") == hashlib.sha256(b"my card").hexdigest(), "a sha256 of the normalised text only"


ticket_ids = st.text(min_size=1, max_size=128).filter(lambda s: s.strip() != "")
texts = st.text(min_size=1, max_size=300).filter(lambda s: normalise_text(s) != "")
extras = st.dictionaries(
    st.text(alphabet="abcdefghij_", min_size=3, max_size=8).filter(
        lambda k: k not in Ticket.model_fields and k != "triage"
    ),
    st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none()),
    max_size=5,
)


@given(ticket_id=ticket_ids, text=texts, extra=extras)
@settings(deadline=None)  # a busy 2-core machine overruns the 200 ms default
def test_ticket_json_round_trip_is_lossless(ticket_id: str, text: str, extra: dict[str, object]) -> None:
    ticket = Ticket.model_validate({"ticket_id": ticket_id, "text": text, **extra,
                                    "created_at": datetime(2026, 1, 1, tzinfo=UTC)})
    again = Ticket.model_validate_json(ticket.model_dump_json())
    assert again == ticket
    assert again.model_extra == extra
    assert Ticket.model_validate_json(again.model_dump_json()).text == ticket.text
