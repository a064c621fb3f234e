"""The trainer's metric maths against answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES
from trainer.metrics import Labels, Predictions, expected_calibration_error, summary

HIGH, MEDIUM, LOW = (PRIORITIES.index(p) for p in (Priority.HIGH, Priority.MEDIUM, Priority.LOW))


def _four() -> Predictions:
    """Four tickets: intent 3 of 4 right, category 3 of 4 (the wrong one flagged for review), High 1 of 2 found."""
    return Predictions(
        intent=Labels(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])),
        category=Labels(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])),
        priority=Labels(np.array([HIGH, HIGH, LOW, MEDIUM]), np.array([HIGH, LOW, HIGH, MEDIUM])),
        intent_confidence=np.array([0.9, 0.9, 0.3, 0.3]),
        category_confidence=np.array([1.0, 1.0, 1.0, 1.0]),
        p_high=np.array([0.8, 0.1, 0.7, 0.2]),
        needs_review=np.array([False, True, False, False]),
        out_of_scope=np.array([False, False, False, True]),
    )


def test_summary_gives_the_figures_worked_out_by_hand() -> None:
    got = summary(_four())
    assert got["n"] == 4
    assert got["intent_accuracy"] == pytest.approx(0.75)
    # per intent F1: 0 → P 1, R 1/2 → 2/3; 1 → P 1/2, R 1 → 2/3; 2 → 1
    assert got["intent_macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # per category F1: 0 → P 1, R 1/2 → 2/3; 1 → P 2/3, R 1 → 4/5
    assert got["category_accuracy"] == pytest.approx(0.75)
    assert got["category_macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert got["priority_accuracy"] == pytest.approx(0.5)
    assert got["high_recall"] == pytest.approx(0.5)  # 1 of the 2 High tickets predicted High
    assert got["high_precision"] == pytest.approx(0.5)  # 1 of the 2 predicted High is High
    assert got["intent_ece"] == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.3))
    assert got["category_ece"] == pytest.approx(0.25)  # confidence 1.0 in the last bin, 3 of 4 right
    assert got["review_rate"] == pytest.approx(0.25) and got["out_of_scope_rate"] == pytest.approx(0.25)
    assert got["routed_category_accuracy"] == pytest.approx(1.0), "the one wrong category was held for review"


def test_calibration_error_is_zero_when_confidence_matches_accuracy_and_counts_each_bin_by_its_weight() -> None:
    confidence = np.array([0.75] * 4 + [0.25] * 4)
    correct = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([0.95, 0.55]), np.array([False, True])) == pytest.approx(
        0.5 * 0.95 + 0.5 * 0.45
    )
    assert expected_calibration_error(np.array([0.95, 0.55]), np.array([False, True]), bins=1) == pytest.approx(
        abs(0.5 - 0.75)
    )


def test_no_high_ticket_and_nothing_routed_give_zero_and_none_not_an_error() -> None:
    p = _four()
    quiet = Predictions(
        intent=p.intent, category=p.category,
        priority=Labels(np.array([LOW, LOW, LOW, LOW]), np.array([LOW, LOW, LOW, LOW])),
        intent_confidence=p.intent_confidence, category_confidence=p.category_confidence, p_high=p.p_high,
        needs_review=np.array([True] * 4), out_of_scope=p.out_of_scope,
    )
    got = summary(quiet)
    assert got["high_recall"] == 0.0 and got["high_precision"] == 0.0
    assert got["routed_category_accuracy"] is None and got["review_rate"] == 1.0
