"""The out-of-scope High bar: set so that the whole rule, not the flagged texts alone, keeps the page budget."""

from __future__ import annotations

import numpy as np

from trainer.scope import page_threshold

RULE = (0.1, 0.02, 0.001)  # in-scope High bar, scope threshold, far threshold


def test_bar_lets_at_most_the_budget_of_flagged_texts_page() -> None:
    p_high = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.05, 0.05, 0.05, 0.05, 0.05])
    scores = np.full(10, 0.01)  # all flagged, none far
    bar = page_threshold(p_high, scores, RULE, page_budget=0.2)
    assert (p_high >= bar).sum() == 2 and bar > 0.7


def test_unflagged_pages_use_up_the_budget_first() -> None:
    p_high = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.05, 0.05, 0.05, 0.05, 0.05])
    scores = np.array([0.5, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01])  # the 0.9 text is not flagged
    assert page_threshold(p_high, scores, RULE, page_budget=0.2) > 0.7
    assert page_threshold(p_high, scores, RULE, page_budget=0.1) > 0.8
    assert page_threshold(p_high, np.full(10, 0.5), RULE, page_budget=0.1) == 1.0  # over budget already


def test_far_texts_never_count_and_the_bar_is_never_below_the_in_scope_one() -> None:
    p_high = np.array([0.99, 0.98, 0.97, 0.05])
    far = np.array([0.0005, 0.0005, 0.0005, 0.01])
    assert page_threshold(p_high, far, RULE, page_budget=0.0) == RULE[0]
