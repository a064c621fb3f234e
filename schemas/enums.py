"""The closed label sets every topic speaks; categories are data (``schemas.taxonomy``), not listed here."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Priority", "ErrorCode"]


class Priority(StrEnum):
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


class ErrorCode(StrEnum):
    """Machine-readable reasons a message went to the dead-letter topic."""

    EMPTY_MESSAGE = "empty_message"
    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    DUPLICATE_KEY = "duplicate_key"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    PROCESSING_FAILED = "processing_failed"
    MODEL_CRASHED = "model_crashed"
    OUTPUT_TOO_LARGE = "output_too_large"
    OUTPUT_REFUSED = "output_refused"
