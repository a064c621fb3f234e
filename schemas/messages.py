"""Pydantic models for every message on every topic: the wire contract."""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.enums import ErrorCode, Priority

__all__ = [
    "MAX_TEXT_CHARS",
    "Ticket",
    "IntentScore",
    "Confidence",
    "Triage",
    "EnrichedTicket",
    "ErrorInfo",
    "DeadLetter",
    "normalise_text",
    "text_hash",
]

MAX_TEXT_CHARS = 10_000
_KEPT_CONTROLS = {"\n", "\t"}


def normalise_text(text: str) -> str:
    """Strip control characters and NFC-normalise, so equal-looking texts compare (and cache) equal."""
    if text.isascii() and text.isprintable():
        return text.strip()  # fast path: printable ASCII has no controls and is already NFC
    cleaned = "".join(
        ch for ch in text if ch in _KEPT_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    return unicodedata.normalize("NFC", cleaned).strip()


def text_hash(text: str) -> str:
    """Stable, non-reversible fingerprint of a ticket text, safe for logs and cache keys."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Ticket(BaseModel):
    """An incoming support ticket. Unknown fields are kept and passed through untouched."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    ticket_id: Annotated[StrictStr, Field(min_length=1, max_length=128, description="Caller's unique id.")]
    text: Annotated[StrictStr, Field(description="Customer message, 1..10,000 chars after cleaning.")]
    customer_id: StrictStr | None = None
    channel: StrictStr | None = None
    created_at: AwareDatetime | None = None
    language: StrictStr | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("ticket_id")
    @classmethod
    def _ticket_id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("blank_ticket_id", "ticket_id is blank")
        return value

    @field_validator("text")
    @classmethod
    def _clean_text(cls, value: str) -> str:
        cleaned = normalise_text(value)
        if not cleaned:
            raise PydanticCustomError("empty_text", "text is empty after removing whitespace and controls")
        if len(cleaned) > MAX_TEXT_CHARS:
            raise PydanticCustomError(
                "text_too_long",
                "text has {length} characters, more than the {limit} allowed",
                {"length": len(cleaned), "limit": MAX_TEXT_CHARS},
            )
        return cleaned


class IntentScore(BaseModel):
    intent: str
    probability: Annotated[float, Field(ge=0.0, le=1.0)]


class Confidence(BaseModel):
    """Probabilities of the chosen labels; category and priority are marginals over intents."""

    category: Annotated[float, Field(ge=0.0, le=1.0)]
    intent: Annotated[float, Field(ge=0.0, le=1.0)]
    priority: Annotated[float, Field(ge=0.0, le=1.0)]


class Triage(BaseModel):
    """What the classifier adds to a ticket.

    ``category`` is one of the serving checkpoint's categories (its ``taxonomy.csv``); validated against them
    when the categories are passed as context: ``Triage.model_validate(data, context={"categories": ...})``.
    """

    category: Annotated[str, Field(min_length=1, description="One of the serving checkpoint's categories.")]
    priority: Priority
    intent: str
    confidence: Confidence
    top_intents: Annotated[list[IntentScore], Field(max_length=3)]
    needs_review: bool
    out_of_scope: bool = Field(
        default=False,
        description="The text is unlike any ticket the model was trained on (greeting, spam, another domain): "
        "the taxonomy's out-of-scope category, sent to review, paged only on strong High evidence.",
    )
    scope_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        default=None,
        description="How typical the text is of in-scope tickets, 0..1, higher is more in scope: the "
        "share of in-scope validation tickets that looked at least as unusual. out_of_scope is "
        "scope_score < the checkpoint's scope threshold. None when the checkpoint has no out-of-scope detector.",
    )
    model_version: str
    cached: bool = False
    triaged_at: AwareDatetime = Field(default_factory=_utcnow)
    latency_ms: Annotated[float, Field(ge=0.0)] = 0.0

    @field_validator("category")
    @classmethod
    def _served_category(cls, value: str, info: ValidationInfo) -> str:
        categories = (info.context or {}).get("categories")
        if categories is not None and value not in categories:
            raise PydanticCustomError(
                "unknown_category", "category {category!r} is not one of the served taxonomy's {categories}",
                {"category": value, "categories": ", ".join(categories)},
            )
        return value


class EnrichedTicket(Ticket):
    """The original ticket, every field included, plus its triage."""

    triage: Triage

    @classmethod
    def from_ticket(cls, ticket: Ticket, triage: Triage) -> EnrichedTicket:
        return cls.model_validate({**ticket.model_dump(mode="json"), "triage": triage})


class ErrorInfo(BaseModel):
    code: ErrorCode
    message: str


class DeadLetter(BaseModel):
    """A message that could not be triaged, kept byte-exact (up to a cap) with the reason."""

    payload: str = Field(description="The raw message: text when valid UTF-8, else base64.")
    payload_encoding: Literal["utf-8", "base64"]
    payload_size: int = Field(ge=0, description="Size of the original message in bytes.")
    payload_sha256: str
    payload_truncated: bool = False
    error: ErrorInfo
    ticket_id: str | None = Field(default=None, description="Best-effort id, when one could be read.")
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: AwareDatetime = Field(default_factory=_utcnow)

    @classmethod
    def build(
        cls,
        raw: bytes | None,
        error: ErrorInfo,
        *,
        source_topic: str,
        source_partition: int,
        source_offset: int,
        ticket_id: str | None = None,
        max_payload_bytes: int = 512 * 1024,
    ) -> DeadLetter:
        data = raw or b""
        kept = data[:max_payload_bytes]
        try:
            payload, encoding = kept.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(kept).decode("ascii"), "base64"
        return cls(
            payload=payload,
            payload_encoding=encoding,
            payload_size=len(data),
            payload_sha256=hashlib.sha256(data).hexdigest(),
            payload_truncated=len(kept) < len(data),
            error=error,
            ticket_id=ticket_id,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
        )

    def raw_payload(self) -> bytes:
        """The kept bytes exactly as they arrived."""
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")
