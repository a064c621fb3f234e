"""From intent probabilities to category, priority and review flags: the one place the rules live."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from schemas.enums import Category, Priority
from schemas.messages import Confidence, IntentScore, Triage
from schemas.taxonomy import CATEGORIES, PRIORITIES, Taxonomy

__all__ = ["Thresholds", "Marginals", "marginalise", "decide"]

_HIGH = PRIORITIES.index(Priority.HIGH)


class Thresholds(BaseModel):
    """Decision thresholds tuned on the validation split and stored with each checkpoint."""

    high_priority: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Priority is High when P(High) is at least this."
    )
    review: float = Field(
        default=0.5, ge=0.0, le=1.0, description="needs_review when the category probability is below this."
    )

    @classmethod
    def load(cls, path: Path) -> Thresholds:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n", encoding="utf-8")


class Marginals(BaseModel, arbitrary_types_allowed=True):
    """Per-text probabilities: intents (n, 77), categories (n, 5), priorities (n, 3)."""

    intents: np.ndarray
    categories: np.ndarray
    priorities: np.ndarray


def marginalise(intent_probs: np.ndarray, taxonomy: Taxonomy) -> Marginals:
    """Sum intent probabilities over the taxonomy, so category/priority carry all the model's doubt."""
    probs = np.asarray(intent_probs, dtype=np.float32)
    return Marginals(
        intents=probs,
        categories=probs @ taxonomy.category_matrix,
        priorities=probs @ taxonomy.priority_matrix,
    )


def priority_ids(priorities: np.ndarray, high_threshold: float) -> np.ndarray:
    """High when P(High) ≥ threshold, else the likelier of Medium and Low."""
    rest = priorities.copy()
    rest[:, _HIGH] = -1.0
    return np.where(priorities[:, _HIGH] >= high_threshold, _HIGH, rest.argmax(axis=1))


def decide(
    intent_probs: np.ndarray,
    taxonomy: Taxonomy,
    thresholds: Thresholds,
    model_version: str,
    latency_ms: float = 0.0,
) -> list[Triage]:
    """Build one ``Triage`` per row of intent probabilities (rows in ``taxonomy.intents`` order)."""
    m = marginalise(intent_probs, taxonomy)
    intents = taxonomy.intents
    pri_ids = priority_ids(m.priorities, thresholds.high_priority)
    results = []
    for row in range(m.intents.shape[0]):
        top = np.argsort(-m.intents[row])[:3]
        cat_id = int(m.categories[row].argmax())
        cat_conf = float(m.categories[row, cat_id])
        pri_id = int(pri_ids[row])
        results.append(
            Triage(
                category=Category(CATEGORIES[cat_id]),
                priority=Priority(PRIORITIES[pri_id]),
                intent=intents[int(top[0])],
                confidence=Confidence(
                    category=_unit(cat_conf),
                    intent=_unit(float(m.intents[row, top[0]])),
                    priority=_unit(float(m.priorities[row, pri_id])),
                ),
                top_intents=[
                    IntentScore(intent=intents[int(i)], probability=_unit(float(m.intents[row, i])))
                    for i in top
                ],
                needs_review=cat_conf < thresholds.review,
                model_version=model_version,
                latency_ms=latency_ms,
            )
        )
    return results


def _unit(value: float) -> float:
    """Clamp float32 round-off so probabilities validate as [0, 1]."""
    return min(1.0, max(0.0, round(value, 6)))
