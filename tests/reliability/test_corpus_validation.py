"""Every corpus message meets its expected outcome at the validation door (the worker test sends them for real)."""

from __future__ import annotations

import pytest

from schemas import Ticket, TicketRejected, decode_ticket
from schemas.validation import DEFAULT_MAX_MESSAGE_BYTES
from tests.reliability.corpus import CORPUS, TRIAGED, BadInput


def test_corpus_is_large_and_distinct() -> None:
    assert len(CORPUS) >= 25
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    assert len({c.raw for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_each_message_meets_its_expected_outcome(case: BadInput) -> None:
    if case.expected == TRIAGED:
        ticket = decode_ticket(case.raw, DEFAULT_MAX_MESSAGE_BYTES)
        assert isinstance(ticket, Ticket)
        assert ticket.model_dump_json()
    else:
        with pytest.raises(TicketRejected) as info:
            decode_ticket(case.raw, DEFAULT_MAX_MESSAGE_BYTES)
        assert info.value.info.code == case.expected


def test_unknown_fields_survive_validation() -> None:
    case = next(c for c in CORPUS if c.name == "five_hundred_unknown_fields")
    ticket = decode_ticket(case.raw)
    assert ticket.model_extra is not None and len(ticket.model_extra) == 500
