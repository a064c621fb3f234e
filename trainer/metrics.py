"""Intent, category and priority metrics from intent probabilities, computed the way the worker decides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

from inference.decision import Thresholds, apply_rules, marginalise
from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, Taxonomy

__all__ = ["Labels", "Predictions", "expected_calibration_error", "predictions", "summary", "per_class"]

_HIGH = PRIORITIES.index(Priority.HIGH)


@dataclass(frozen=True)
class Labels:
    """True and predicted ids for the three label spaces (ids index the taxonomy order)."""

    true: np.ndarray
    pred: np.ndarray


@dataclass(frozen=True)
class Predictions:
    """Everything the metrics and plots need for one split."""

    intent: Labels
    category: Labels
    priority: Labels
    intent_confidence: np.ndarray
    category_confidence: np.ndarray
    p_high: np.ndarray
    needs_review: np.ndarray
    out_of_scope: np.ndarray


def predictions(
    probs: np.ndarray,
    true_intents: Sequence[str],
    taxonomy: Taxonomy,
    thresholds: Thresholds,
    scope_scores: np.ndarray | None = None,
) -> Predictions:
    """Apply the worker's decision rules (``inference.decision``) to a split's intent probabilities."""
    index = {name: i for i, name in enumerate(taxonomy.intents)}
    true_intent = np.array([index[name] for name in true_intents])
    m = marginalise(probs, taxonomy)
    decided = apply_rules(m, thresholds, scope_scores)
    cat_of = taxonomy.category_matrix.argmax(axis=1)
    pri_of = taxonomy.priority_matrix.argmax(axis=1)
    return Predictions(
        intent=Labels(true_intent, m.intents.argmax(axis=1)),
        category=Labels(cat_of[true_intent], decided.categories),
        priority=Labels(pri_of[true_intent], decided.priorities),
        intent_confidence=m.intents.max(axis=1),
        category_confidence=m.categories.max(axis=1),
        p_high=m.priorities[:, _HIGH],
        needs_review=decided.needs_review,
        out_of_scope=decided.out_of_scope,
    )


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Weighted gap between confidence and accuracy over equal-width confidence bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(float(correct[mask].mean()) - float(confidence[mask].mean()))
    return float(ece)


def summary(p: Predictions) -> dict[str, Any]:
    """Headline figures (fractions in [0, 1]) for metrics.json and the CLI summary."""
    is_high_true = p.priority.true == _HIGH
    is_high_pred = p.priority.pred == _HIGH
    cat_correct = p.category.true == p.category.pred
    routed = ~p.needs_review
    return {
        "n": int(p.intent.true.size),
        "intent_accuracy": float(accuracy_score(p.intent.true, p.intent.pred)),
        "intent_macro_f1": float(f1_score(p.intent.true, p.intent.pred, average="macro", zero_division=0)),
        "category_accuracy": float(cat_correct.mean()),
        "category_macro_f1": float(
            f1_score(p.category.true, p.category.pred, average="macro", zero_division=0)
        ),
        "priority_accuracy": float(accuracy_score(p.priority.true, p.priority.pred)),
        "high_recall": float(recall_score(is_high_true, is_high_pred, zero_division=0)),
        "high_precision": float(precision_score(is_high_true, is_high_pred, zero_division=0)),
        "intent_ece": expected_calibration_error(p.intent_confidence, p.intent.true == p.intent.pred),
        "category_ece": expected_calibration_error(p.category_confidence, cat_correct),
        "review_rate": float(p.needs_review.mean()),
        "out_of_scope_rate": float(p.out_of_scope.mean()),
        "routed_category_accuracy": float(cat_correct[routed].mean()) if routed.any() else None,
    }


def per_class(p: Predictions, taxonomy: Taxonomy) -> dict[str, Any]:
    """sklearn per-class precision/recall/F1 for intents, categories and priorities."""

    def report(labels: Labels, names: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = classification_report(
            labels.true, labels.pred, labels=list(range(len(names))), target_names=list(names),
            output_dict=True, zero_division=0,
        )
        return out

    return {
        "intent": report(p.intent, taxonomy.intents),
        "category": report(p.category, taxonomy.categories),
        "priority": report(p.priority, [x.value for x in PRIORITIES]),
    }
