"""Message contract and intent taxonomy shared by the trainer, the worker and the load tools."""

from schemas.enums import Category, ErrorCode, Priority
from schemas.messages import (
    Confidence,
    DeadLetter,
    EnrichedTicket,
    ErrorInfo,
    IntentScore,
    Ticket,
    Triage,
    normalise_text,
    text_hash,
)
from schemas.taxonomy import IntentRule, Taxonomy, load_taxonomy
from schemas.validation import TicketRejected, decode_ticket

__all__ = [
    "Category",
    "Confidence",
    "DeadLetter",
    "EnrichedTicket",
    "ErrorCode",
    "ErrorInfo",
    "IntentRule",
    "IntentScore",
    "Priority",
    "Taxonomy",
    "Ticket",
    "TicketRejected",
    "Triage",
    "decode_ticket",
    "load_taxonomy",
    "normalise_text",
    "text_hash",
]
