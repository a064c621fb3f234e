"""From intent probabilities to category, priority and review flags: the one place the rules live."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from schemas.enums import Priority
from schemas.messages import Confidence, IntentScore, Triage
from schemas.taxonomy import PRIORITIES, Taxonomy

__all__ = ["Decisions", "Marginals", "Thresholds", "apply_rules", "decide", "marginalise", "pages", "priority_ids"]

_HIGH = PRIORITIES.index(Priority.HIGH)
_LOW = PRIORITIES.index(Priority.LOW)


class Thresholds(BaseModel):
    """Decision thresholds tuned on the validation split and stored with each checkpoint."""

    high_priority: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Priority is High when P(High) is at least this."
    )
    review: float = Field(
        default=0.5, ge=0.0, le=1.0, description="needs_review when the category probability is below this."
    )
    out_of_scope: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="out_of_scope when scope_score is below this: the share of in-scope tickets flagged.",
    )
    high_priority_out_of_scope: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="An out-of-scope ticket is High (paged) only when P(High) is at least this.",
    )
    far_out_of_scope: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="No ticket pages when scope_score is below this: farther from every intent than any "
        "in-scope validation ticket, where the model's probabilities are extrapolation.",
    )

    @classmethod
    def load(cls, path: Path) -> Thresholds:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n", encoding="utf-8")


class Marginals(BaseModel, arbitrary_types_allowed=True):
    """Per-text probabilities: labels (n, n_labels), categories (n, n_categories), priorities (n, 3)."""

    intents: np.ndarray
    categories: np.ndarray
    priorities: np.ndarray
    out_of_scope_category: int = Field(description="Column of ``categories`` that out-of-scope tickets take.")


def marginalise(intent_probs: np.ndarray, taxonomy: Taxonomy) -> Marginals:
    """Sum intent probabilities over the taxonomy, so category/priority carry all the model's doubt."""
    probs = np.asarray(intent_probs, dtype=np.float32)
    return Marginals(
        intents=probs,
        categories=probs @ taxonomy.category_matrix,
        priorities=probs @ taxonomy.priority_matrix,
        out_of_scope_category=taxonomy.out_of_scope_index,
    )


def priority_ids(priorities: np.ndarray, high_threshold: float) -> np.ndarray:
    """High when P(High) ≥ threshold, else the likelier of Medium and Low."""
    rest = priorities.copy()
    rest[:, _HIGH] = -1.0
    return np.where(priorities[:, _HIGH] >= high_threshold, _HIGH, rest.argmax(axis=1))


class Decisions(BaseModel, arbitrary_types_allowed=True):
    """Per-text label ids and flags, as the worker publishes them."""

    categories: np.ndarray
    priorities: np.ndarray
    needs_review: np.ndarray
    out_of_scope: np.ndarray


def apply_rules(m: Marginals, thresholds: Thresholds, scope_scores: np.ndarray | None = None) -> Decisions:
    """Category, priority and flags from the marginals: the rules every consumer of the model shares.

    In scope: the likeliest category; High when P(High) reaches ``high_priority`` (tuned for recall);
    review when the category is unsure. Out of scope (``scope_score`` below ``out_of_scope``): a forced
    guess between the trained labels means little, so the ticket takes the taxonomy's out-of-scope category
    (``m.out_of_scope_category``), is Low and reviewed, and
    it pages only when P(High) reaches the stricter ``high_priority_out_of_scope`` — then it keeps the
    model's category, because that evidence is strong enough to route on — and its ``scope_score`` is not
    below ``far_out_of_scope``: beyond every in-scope validation ticket even a confident guess means little
    (off-topic text such as "what year was the saxophone first played" reached P(High) 0.6 there).
    """
    categories = m.categories.argmax(axis=1)
    priorities = priority_ids(m.priorities, thresholds.high_priority)
    needs_review = m.categories.max(axis=1) < thresholds.review
    out_of_scope = np.zeros(categories.shape, dtype=bool)
    if scope_scores is not None:
        out_of_scope = np.asarray(scope_scores) < thresholds.out_of_scope
        paged = _out_of_scope_pages(m.priorities[:, _HIGH], np.asarray(scope_scores), thresholds)
        priorities = np.where(out_of_scope, np.where(paged, _HIGH, _LOW), priorities)
        categories = np.where(out_of_scope & ~paged, m.out_of_scope_category, categories)
        needs_review = needs_review | out_of_scope
    return Decisions(
        categories=categories, priorities=priorities, needs_review=needs_review, out_of_scope=out_of_scope
    )


def pages(p_high: np.ndarray, scope_scores: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """Which texts the rules make High (page on-call), from P(High) and ``scope_score`` alone: what
    ``apply_rules`` decides, without the marginals, to sweep thresholds over many texts cheaply."""
    out_of_scope = scope_scores < thresholds.out_of_scope
    return np.where(out_of_scope, _out_of_scope_pages(p_high, scope_scores, thresholds),
                    p_high >= thresholds.high_priority)


def _out_of_scope_pages(p_high: np.ndarray, scope_scores: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    return (p_high >= thresholds.high_priority_out_of_scope) & (scope_scores >= thresholds.far_out_of_scope)


def decide(
    intent_probs: np.ndarray,
    taxonomy: Taxonomy,
    thresholds: Thresholds,
    model_version: str,
    latency_ms: float = 0.0,
    scope_scores: np.ndarray | None = None,
) -> list[Triage]:
    """Build one ``Triage`` per row of intent probabilities (rows in ``taxonomy.intents`` order).

    Args:
        scope_scores: Per-row ``scope_score`` from the checkpoint's detector; None when it has none.
    """
    m = marginalise(intent_probs, taxonomy)
    intents = taxonomy.intents
    d = apply_rules(m, thresholds, scope_scores)
    context = {"categories": taxonomy.categories}
    results = []
    for row in range(m.intents.shape[0]):
        top = np.argsort(-m.intents[row])[:3]
        cat_id = int(d.categories[row])
        cat_conf = float(m.categories[row, cat_id])
        pri_id = int(d.priorities[row])
        results.append(
            Triage.model_validate(
                {
                    "category": taxonomy.categories[cat_id],
                    "priority": PRIORITIES[pri_id],
                    "intent": intents[int(top[0])],
                    "confidence": Confidence(
                        category=_unit(cat_conf),
                        intent=_unit(float(m.intents[row, top[0]])),
                        priority=_unit(float(m.priorities[row, pri_id])),
                    ),
                    "top_intents": [
                        IntentScore(intent=intents[int(i)], probability=_unit(float(m.intents[row, i])))
                        for i in top
                    ],
                    "needs_review": bool(d.needs_review[row]),
                    "out_of_scope": bool(d.out_of_scope[row]),
                    "scope_score": None if scope_scores is None else _unit(float(scope_scores[row])),
                    "model_version": model_version,
                    "latency_ms": latency_ms,
                },
                context=context,
            )
        )
    return results


def _unit(value: float) -> float:
    """Clamp float32 round-off so probabilities validate as [0, 1]."""
    return min(1.0, max(0.0, round(value, 6)))
