"""One feedback event joined with what was published for its ticket: pure functions, no Kafka, no Redis."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from schemas.enums import ErrorCode, Priority
from schemas.feedback import Feedback, FeedbackRejected
from schemas.messages import EnrichedTicket
from schemas.taxonomy import Taxonomy

__all__ = ["Joined", "Published", "answer", "join"]


@dataclass(frozen=True)
class Published:
    """What the worker published for one ticket, as much as the join and the training data need.

    ``text`` is the published (normalised) text, or None when it was longer than the store keeps.
    """

    model_version: str
    label: str
    category: str
    priority: str
    confidence: float
    scope_score: float | None
    out_of_scope: bool
    text: str | None

    @classmethod
    def from_enriched(cls, enriched: EnrichedTicket, max_text_bytes: int) -> Published:
        triage = enriched.triage
        text = enriched.text if len(enriched.text.encode("utf-8")) <= max_text_bytes else None
        return cls(triage.model_version, triage.intent, triage.category, triage.priority.value,
                   round(triage.confidence.category, 4),
                   None if triage.scope_score is None else round(triage.scope_score, 4), triage.out_of_scope, text)

    def dumps(self) -> bytes:
        """Compact JSON, the join store's value."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def loads(cls, raw: bytes) -> Published:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class Joined:
    """A feedback event next to its published triage: what the agent decided against what the model said."""

    ticket_id: str
    published: Published
    label: str | None
    category: str
    priority: str

    @property
    def category_agrees(self) -> bool:
        return self.category == self.published.category

    @property
    def priority_agrees(self) -> bool:
        return self.priority == self.published.priority

    @property
    def paged(self) -> bool:
        return self.published.priority == Priority.HIGH.value

    @property
    def should_page(self) -> bool:
        return self.priority == Priority.HIGH.value


def answer(feedback: Feedback, taxonomy: Taxonomy) -> tuple[str | None, str, str]:
    """The agent's final (label, category, priority) in the served taxonomy's terms.

    Raises:
        FeedbackRejected: The label is not one of the served taxonomy's, or the category is unknown to it.
    """
    if feedback.label is not None:
        if feedback.label not in taxonomy.intents:
            raise FeedbackRejected(ErrorCode.INVALID_FIELD, f"label: {feedback.label!r} is not a label of the "
                                   "served taxonomy", ticket_id=feedback.ticket_id)
        rule = taxonomy.rule(feedback.label)
        return feedback.label, rule.category, rule.priority.value
    assert feedback.category is not None and feedback.priority is not None, "the model validator ensures both"
    if feedback.category not in taxonomy.categories:
        raise FeedbackRejected(ErrorCode.INVALID_FIELD, f"category: {feedback.category!r} is not a category of "
                               "the served taxonomy", ticket_id=feedback.ticket_id)
    return None, feedback.category, feedback.priority.value


def join(feedback: Feedback, published: Published, taxonomy: Taxonomy) -> Joined:
    """The agent's final answer next to the published triage (``answer`` raises for a foreign label)."""
    return Joined(feedback.ticket_id, published, *answer(feedback, taxonomy))
