"""Threshold tuning on validation: High recall target, review accuracy target."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.thresholds import HIGH_THRESHOLD_CAP, tune_high_threshold, tune_review_threshold


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.9, 0.95, 0.98, 1.0]))
def test_high_threshold_meets_the_recall_target(seed: int, target: float) -> None:
    rng = np.random.default_rng(seed)
    is_high = rng.random(200) < 0.2
    is_high[0] = True
    p_high = np.where(is_high, rng.beta(5, 2, 200), rng.beta(2, 5, 200))
    threshold = tune_high_threshold(p_high, is_high, target)
    assert threshold <= HIGH_THRESHOLD_CAP
    assert (p_high[is_high] >= threshold).mean() >= target


def test_high_threshold_is_the_largest_that_works() -> None:
    p_high = np.array([0.05, 0.2, 0.3, 0.4, 0.45] + [0.1] * 5)
    is_high = np.array([True] * 5 + [False] * 5)
    assert tune_high_threshold(p_high, is_high, 0.8) == 0.2
    assert tune_high_threshold(p_high, is_high, 1.0) == 0.05
    assert tune_high_threshold(np.full(4, 0.9), np.ones(4, bool), 0.98) == HIGH_THRESHOLD_CAP


def test_review_threshold_flags_the_fewest_needed() -> None:
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.6, 0.5])
    correct = np.array([True, True, True, False, True, False])
    assert tune_review_threshold(confidence, correct, 1.0) == 0.9
    assert tune_review_threshold(confidence, correct, 0.8) == 0.6
    assert tune_review_threshold(confidence, np.ones(6, bool), 0.99) == 0.0
    assert tune_review_threshold(confidence, np.zeros(6, bool), 0.99) == 1.0


def test_review_threshold_never_splits_ties() -> None:
    confidence = np.array([0.9, 0.7, 0.7, 0.7])
    correct = np.array([True, True, False, True])
    assert tune_review_threshold(confidence, correct, 0.9) == 0.9
