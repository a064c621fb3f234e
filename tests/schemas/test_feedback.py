"""Feedback messages: a label or a category and priority, anything else refused with a dead-letter reason."""

from __future__ import annotations

import pytest

from schemas.enums import ErrorCode
from schemas.feedback import FeedbackRejected, decode_feedback, encode_feedback


def test_a_label_or_a_category_and_priority_is_an_answer() -> None:
    by_label = decode_feedback(b'{"ticket_id": "t-1", "label": "lost_or_stolen_card", "agent": "ana"}')
    assert (by_label.label, by_label.category) == ("lost_or_stolen_card", None)
    pair = decode_feedback(b'{"ticket_id": "t-2", "category": "Cards", "priority": "High", "extra": 1}')
    assert (pair.category, pair.priority) == ("Cards", "High")
    assert decode_feedback(encode_feedback(pair)) == pair


@pytest.mark.parametrize(("raw", "code"), [
    (b"", ErrorCode.EMPTY_MESSAGE),
    (b"[1]", ErrorCode.NOT_AN_OBJECT),
    (b'{"ticket_id": "t", "ticket_id": "u", "label": "x"}', ErrorCode.DUPLICATE_KEY),
    (b'{"label": "x"}', ErrorCode.MISSING_FIELD),
    (b'{"ticket_id": "t", "category": "Cards"}', ErrorCode.MISSING_FIELD),
    (b'{"ticket_id": "t", "category": "Cards", "priority": "P1"}', ErrorCode.INVALID_FIELD),
    (b'{"ticket_id": "t", "label": "x", "closed_at": "2026-01-01T00:00:00"}', ErrorCode.INVALID_FIELD),
])
def test_malformed_feedback_is_refused_with_a_reason(raw: bytes, code: ErrorCode) -> None:
    with pytest.raises(FeedbackRejected) as caught:
        decode_feedback(raw)
    assert caught.value.info.code == code
