"""Tune the decision thresholds on the validation split (never on test)."""

from __future__ import annotations

import math

import numpy as np

from inference.decision import Thresholds

__all__ = ["HIGH_THRESHOLD_CAP", "tune_high_threshold", "tune_review_threshold", "tune_thresholds"]

HIGH_THRESHOLD_CAP = 0.5
"""Never stricter than a plain majority: tuning may only lower the bar for paging."""


def tune_high_threshold(p_high: np.ndarray, is_high: np.ndarray, recall_target: float) -> float:
    """Largest threshold (≤ 0.5) whose High-priority recall on these examples is at least ``recall_target``.

    Args:
        p_high: P(High) per example (marginal over the High intents).
        is_high: True where the example's true priority is High.
        recall_target: e.g. 0.98 — a missed stolen card costs far more than a false page.
    """
    positives = np.sort(np.asarray(p_high, dtype=np.float64)[np.asarray(is_high, dtype=bool)])[::-1]
    if positives.size == 0:
        return HIGH_THRESHOLD_CAP
    needed = min(positives.size, max(1, math.ceil(recall_target * positives.size - 1e-9)))
    return float(min(HIGH_THRESHOLD_CAP, positives[needed - 1]))


def tune_review_threshold(confidence: np.ndarray, correct: np.ndarray, accuracy_target: float) -> float:
    """Smallest threshold such that examples at or above it are categorised with ``accuracy_target``.

    Tickets below the threshold get ``needs_review``; the smallest such threshold flags the fewest.
    Returns 0.0 when every example already meets the target and 1.0 when no threshold does.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.size == 0:
        return 0.0
    order = np.argsort(-conf, kind="stable")
    cum_acc = np.cumsum(ok[order]) / np.arange(1, conf.size + 1)
    sorted_conf = conf[order]
    # Only cut between distinct confidences, so "≥ threshold" keeps exactly the prefix measured.
    last_of_value = np.append(sorted_conf[1:] != sorted_conf[:-1], True)
    good = np.flatnonzero((cum_acc >= accuracy_target) & last_of_value)
    if good.size == 0:
        return 1.0
    if good[-1] == conf.size - 1:
        return 0.0
    return float(sorted_conf[good[-1]])


def tune_thresholds(
    p_high: np.ndarray,
    is_high: np.ndarray,
    category_confidence: np.ndarray,
    category_correct: np.ndarray,
    *,
    recall_target: float,
    accuracy_target: float,
) -> Thresholds:
    """Both thresholds at once, as stored with the checkpoint."""
    return Thresholds(
        high_priority=tune_high_threshold(p_high, is_high, recall_target),
        review=tune_review_threshold(category_confidence, category_correct, accuracy_target),
    )
