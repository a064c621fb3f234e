"""Message contract and label taxonomy shared by the trainer, the worker and the load tools."""

from schemas.enums import ErrorCode, Priority
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
from schemas.taxonomy import IntentRule, Taxonomy, TaxonomyError, load_taxonomy
from schemas.validation import TicketRejected, decode_ticket

__all__ = [
    "Confidence",
    "DeadLetter",
    "EnrichedTicket",
    "ErrorCode",
    "ErrorInfo",
    "IntentRule",
    "IntentScore",
    "Priority",
    "Taxonomy",
    "TaxonomyError",
    "Ticket",
    "TicketRejected",
    "Triage",
    "decode_ticket",
    "load_taxonomy",
    "normalise_text",
    "text_hash",
]
