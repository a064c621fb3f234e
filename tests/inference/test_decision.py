"""Decision rules: marginalisation, the High threshold and the review flag."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.decision import Thresholds, apply_rules, decide, marginalise, pages, priority_ids
from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, load_taxonomy

TAXONOMY = load_taxonomy()
N = len(TAXONOMY.intents)


def _one_intent(intent: str, mass: float = 1.0) -> np.ndarray:
    """All ``mass`` on one intent, the rest spread evenly."""
    row = np.full((1, N), (1.0 - mass) / (N - 1), dtype=np.float32)
    row[0, TAXONOMY.intents.index(intent)] = mass
    return row


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_marginals_are_distributions(rows: int, seed: int) -> None:
    probs = np.random.default_rng(seed).dirichlet(np.full(N, 0.3), size=rows).astype(np.float32)
    m = marginalise(probs, TAXONOMY)
    np.testing.assert_allclose(m.categories.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(m.priorities.sum(axis=1), 1.0, atol=1e-5)


def test_category_is_the_sum_not_the_argmax_intent() -> None:
    """Two Billing intents at 0.3 each beat one General Inquiry intent at 0.4."""
    billing = [r.intent for r in TAXONOMY.rules if r.category == "Billing"][:2]
    general = next(r.intent for r in TAXONOMY.rules if r.category == "General Inquiry")
    probs = np.zeros((1, N), dtype=np.float32)
    probs[0, [TAXONOMY.intents.index(b) for b in billing]] = 0.3
    probs[0, TAXONOMY.intents.index(general)] = 0.4
    [triage] = decide(probs, TAXONOMY, Thresholds(), "v1")
    assert triage.intent == general
    assert triage.category == "Billing"
    assert triage.confidence.category == pytest.approx(0.6)


def test_high_threshold_pages_below_a_majority() -> None:
    priorities = np.array([[0.3, 0.5, 0.2], [0.1, 0.2, 0.7]], dtype=np.float32)
    assert priority_ids(priorities, 0.25).tolist() == [0, 2]
    assert priority_ids(priorities, 0.5).tolist() == [1, 2]


def test_review_flag_follows_the_threshold() -> None:
    probs = _one_intent("lost_or_stolen_card", mass=0.7)
    [sure] = decide(probs, TAXONOMY, Thresholds(review=0.5), "v1")
    [unsure] = decide(probs, TAXONOMY, Thresholds(review=0.95), "v1")
    assert sure.priority is Priority.HIGH and not sure.needs_review
    assert unsure.needs_review
    assert [s.probability for s in sure.top_intents] == sorted((s.probability for s in sure.top_intents), reverse=True)


def test_thresholds_round_trip(tmp_path) -> None:
    path = tmp_path / "thresholds.json"
    Thresholds(high_priority=0.123, review=0.77).save(path)
    assert Thresholds.load(path) == Thresholds(high_priority=0.123, review=0.77)


OFF_TOPIC = Thresholds(high_priority=0.06, out_of_scope=0.02, high_priority_out_of_scope=0.6, far_out_of_scope=0.001)


def test_out_of_scope_ticket_is_general_low_reviewed_and_not_paged() -> None:
    """A forced guess at a High intent on an off-topic text must not page: that is what the rule is for."""
    probs = _one_intent("compromised_card", mass=0.4)
    [inside] = decide(probs, TAXONOMY, OFF_TOPIC, "v1", scope_scores=np.array([0.5]))
    [outside] = decide(probs, TAXONOMY, OFF_TOPIC, "v1", scope_scores=np.array([0.01]))
    assert inside.priority is Priority.HIGH and not inside.out_of_scope and inside.scope_score == 0.5
    assert outside.out_of_scope and outside.needs_review
    assert outside.category == "General Inquiry"
    assert outside.priority is Priority.LOW
    assert outside.intent == "compromised_card"


@pytest.mark.parametrize(
    ("scope_score", "priority", "category"),
    [
        (0.001, Priority.HIGH, "Account/Login"),  # flagged, strong High evidence: pages with its category
        (0.0009, Priority.LOW, "General Inquiry"),  # below far_out_of_scope: extrapolation, never pages
    ],
)
def test_out_of_scope_ticket_pages_on_strong_evidence_unless_beyond_every_validation_ticket(
    scope_score: float, priority: Priority, category: str
) -> None:
    probs = _one_intent("lost_or_stolen_card", mass=0.95)
    [triage] = decide(probs, TAXONOMY, OFF_TOPIC, "v1", scope_scores=np.array([scope_score]))
    assert triage.out_of_scope and triage.needs_review
    assert (triage.priority, triage.category) == (priority, category)


def test_scope_threshold_is_strict_and_absent_scores_never_flag() -> None:
    probs = _one_intent("card_arrival", mass=0.9)
    [at_threshold] = decide(probs, TAXONOMY, OFF_TOPIC, "v1", scope_scores=np.array([0.02]))
    [unscored] = decide(probs, TAXONOMY, OFF_TOPIC, "v1")
    assert not at_threshold.out_of_scope
    assert not unscored.out_of_scope and unscored.scope_score is None


def test_pages_is_what_apply_rules_makes_high() -> None:
    """The threshold sweeps (``trainer.pagerule``) read ``pages``; it must decide as the served rules do."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(N, 0.05), size=400).astype(np.float32)
    scores = rng.choice([0.0005, 0.005, 0.015, 0.5], size=400)
    marginals = marginalise(probs, TAXONOMY)
    high = PRIORITIES.index(Priority.HIGH)
    served = apply_rules(marginals, OFF_TOPIC, scores).priorities == high
    swept = pages(marginals.priorities[:, high], scores, OFF_TOPIC)
    assert served.any() and (~served).any() and np.array_equal(served, swept)
