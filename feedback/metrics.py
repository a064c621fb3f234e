"""Prometheus metrics of live quality: agreement with agents per model version, paging precision and recall,
overturned out-of-scope flags, late feedback, and drift of live traffic against the checkpoint's validation data."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from feedback.join import Joined, Published

__all__ = ["DRIFT_BINS", "FeedbackMetrics", "category_drift", "scope_drift"]

DRIFT_BINS = 20
"""Scope-score bins of the drift statistic."""


def category_drift(live: Mapping[str, int], reference: Mapping[str, float]) -> float:
    """Total-variation distance between the live category mix and the reference shares (0 same, 1 disjoint)."""
    total = sum(live.values())
    if total == 0:
        return 0.0
    names = set(live) | set(reference)
    return 0.5 * sum(abs(live.get(name, 0) / total - reference.get(name, 0.0)) for name in names)


def scope_drift(scores: np.ndarray) -> float:
    """Kolmogorov–Smirnov distance of live scope scores from the uniform distribution they have on the checkpoint's
    validation tickets (a scope score is the share of validation tickets that looked at least as unusual)."""
    if len(scores) == 0:
        return 0.0
    counts, edges = np.histogram(scores, bins=DRIFT_BINS, range=(0.0, 1.0))
    cdf = np.cumsum(counts) / len(scores)
    return float(np.max(np.abs(cdf - edges[1:])))


class FeedbackMetrics:
    """Counters updated per joined feedback and per published ticket; drift gauges over a sliding window."""

    def __init__(self, reference: Mapping[str, float], drift_window: int = 5000) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = PromCounter(
            "triage_feedback_messages", "Feedback messages by outcome: joined, too_late (no published triage "
            "in the store), deadlettered, duplicate (already counted).", ["outcome"], registry=r)
        self.category = PromCounter(
            "triage_feedback_category", "Joined feedback by the agent's category and whether the model agreed.",
            ["model_version", "category", "agree"], registry=r)
        self.priority = PromCounter(
            "triage_feedback_priority", "Joined feedback by the agent's priority and whether the model agreed.",
            ["model_version", "priority", "agree"], registry=r)
        self.paging = PromCounter(
            "triage_feedback_paging", "Joined feedback by whether the model paged (High) and whether the agent "
            "says it should have.", ["model_version", "paged", "should_page"], registry=r)
        self.out_of_scope = PromCounter(
            "triage_feedback_out_of_scope", "Joined feedback on tickets flagged out of scope, by whether the agent "
            "overturned the flag (gave an in-scope category).", ["model_version", "overturned"], registry=r)
        self.published = PromCounter(
            "triage_feedback_published", "Published tickets seen on the enriched topic, by category.",
            ["model_version", "category"], registry=r)
        self.scope_score = Histogram(
            "triage_feedback_scope_score", "Scope scores of published tickets (uniform on the validation data).",
            ["model_version"], buckets=[i / 10 for i in range(1, 11)], registry=r)
        self.reference_share = Gauge(
            "triage_feedback_reference_category_share", "Share of each category in the served checkpoint's "
            "validation data.", ["category"], registry=r)
        self.category_drift = Gauge(
            "triage_feedback_category_drift", "Total-variation distance of the category mix of the last "
            "published tickets from the validation mix (0..1).", registry=r)
        self.scope_drift = Gauge(
            "triage_feedback_scope_drift", "Kolmogorov–Smirnov distance of the last published scope scores from "
            "their validation distribution (uniform; 0..1).", registry=r)
        self.reference = dict(reference)
        for name, share in self.reference.items():
            self.reference_share.labels(name).set(share)
        self._categories: deque[str] = deque(maxlen=drift_window)
        self._scores: deque[float] = deque(maxlen=drift_window)

    def on_published(self, records: list[Published]) -> None:
        for published in records:
            self.published.labels(published.model_version, published.category).inc()
            self._categories.append(published.category)
            if published.scope_score is not None:
                self.scope_score.labels(published.model_version).observe(published.scope_score)
                self._scores.append(published.scope_score)
        if self.reference:
            self.category_drift.set(category_drift(Counter(self._categories), self.reference))
        self.scope_drift.set(scope_drift(np.fromiter(self._scores, dtype=float)))

    def on_joined(self, joined: Joined, out_of_scope_category: str) -> None:
        version = joined.published.model_version
        self.messages.labels("joined").inc()
        self.category.labels(version, joined.category, _flag(joined.category_agrees)).inc()
        self.priority.labels(version, joined.priority, _flag(joined.priority_agrees)).inc()
        self.paging.labels(version, _flag(joined.paged), _flag(joined.should_page)).inc()
        if joined.published.out_of_scope:
            self.out_of_scope.labels(version, _flag(joined.category != out_of_scope_category)).inc()

    def on_outcome(self, outcome: str) -> None:
        self.messages.labels(outcome).inc()


def _flag(value: bool) -> str:
    return "true" if value else "false"
