"""The join and the drift statistics, without Kafka or Redis."""

from __future__ import annotations

import numpy as np
import pytest

from feedback.join import Published, answer, join
from feedback.metrics import FeedbackMetrics, category_drift, scope_drift
from schemas.feedback import Feedback, FeedbackRejected
from tests.feedback.kit import TAXONOMY, published_cases


def _published() -> Published:
    return Published.from_enriched(published_cases("j", 1)[0].enriched, max_text_bytes=2048)


def test_a_label_is_judged_by_its_category_and_priority() -> None:
    published = _published()
    rule = TAXONOMY.rule(published.label)
    joined = join(Feedback(ticket_id="j-0", label=published.label), published, TAXONOMY)
    assert (joined.category, joined.priority) == (rule.category, rule.priority.value)
    assert joined.category_agrees == (published.category == rule.category)
    assert Published.loads(published.dumps()) == published


def test_a_foreign_label_or_category_is_refused() -> None:
    with pytest.raises(FeedbackRejected, match="not a label"):
        answer(Feedback(ticket_id="t", label="no_such_label"), TAXONOMY)
    with pytest.raises(FeedbackRejected, match="not a category"):
        answer(Feedback(ticket_id="t", category="Nowhere", priority="Low"), TAXONOMY)


def test_a_long_text_is_joined_without_it() -> None:
    case = published_cases("j", 1)[0]
    assert Published.from_enriched(case.enriched, max_text_bytes=5).text is None


def test_drift_is_zero_on_the_reference_and_grows_away_from_it() -> None:
    assert category_drift({"A": 50, "B": 50}, {"A": 0.5, "B": 0.5}) == 0.0
    assert category_drift({"A": 100}, {"A": 0.5, "B": 0.5}) == pytest.approx(0.5)
    uniform = np.random.default_rng(0).random(5000)
    assert scope_drift(uniform) < 0.03
    assert scope_drift(uniform * 0.2) > 0.7


def test_the_drift_window_is_bounded() -> None:
    metrics = FeedbackMetrics({"Cards": 1.0}, drift_window=10)
    metrics.on_published([_published()] * 25)
    assert len(metrics._categories) == 10
