"""The feedback contract: what an agent finally decided about a ticket, one message per closed or corrected ticket."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from schemas.enums import ErrorCode, Priority
from schemas.messages import MAX_TEXT_CHARS
from schemas.validation import DEFAULT_MAX_MESSAGE_BYTES, TicketRejected, decode_object, guess_ticket_id

__all__ = ["Feedback", "FeedbackRejected", "decode_feedback", "encode_feedback"]

FeedbackRejected = TicketRejected
"""A feedback message that can never be joined; carries the dead-letter reason (the tickets' own type)."""


class Feedback(BaseModel):
    """The final answer for one ticket: its label (a taxonomy label), or its category and priority.

    The label wins when both are given; ``category``/``priority`` alone are compared with the published ones.
    """

    model_config = ConfigDict(extra="ignore")

    ticket_id: Annotated[StrictStr, Field(min_length=1, max_length=128, description="The ticket's id, as triaged.")]
    label: StrictStr | None = Field(
        default=None, min_length=1, description="Final fine-grained label (an intent of the served taxonomy)."
    )
    category: StrictStr | None = Field(default=None, min_length=1, description="Final category.")
    priority: Priority | None = Field(default=None, description="Final priority.")
    text: Annotated[StrictStr, Field(max_length=MAX_TEXT_CHARS)] | None = Field(
        default=None,
        description="The text the agent saw, optional; never used for training (only the published text is).",
    )
    agent: StrictStr | None = Field(default=None, max_length=128, description="Who closed or corrected the ticket.")
    closed_at: AwareDatetime | None = Field(default=None, description="When the ticket was closed or corrected.")

    @model_validator(mode="after")
    def _has_an_answer(self) -> Feedback:
        if self.label is None and (self.category is None or self.priority is None):
            raise PydanticCustomError(
                "no_answer", "feedback needs a label, or both category and priority"
            )
        return self


def decode_feedback(raw: bytes | None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Feedback:
    """Validate one raw feedback message.

    Raises:
        FeedbackRejected: With the error code and a human-readable reason (the dead letter's).
    """
    obj = decode_object(raw, max_bytes)
    try:
        return Feedback.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        code = ErrorCode.MISSING_FIELD if first["type"] in ("missing", "no_answer") else ErrorCode.INVALID_FIELD
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise FeedbackRejected(code, f"{where}: {first['msg']}", ticket_id=guess_ticket_id(obj)) from None


def encode_feedback(feedback: Feedback) -> bytes:
    """The wire form of a feedback message (UTF-8 JSON, unset fields left out)."""
    return json.dumps(feedback.model_dump(mode="json", exclude_none=True), ensure_ascii=False).encode("utf-8")

