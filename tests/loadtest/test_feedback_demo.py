"""The feedback demo's measurements: live accuracy read from the feedback process's counters, and its plot."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from feedback.join import Joined, Published
from feedback.metrics import FeedbackMetrics
from loadtest.feedback_demo import LiveAccuracy, _live_accuracy, _plot


def _joined(version: str, agrees: bool) -> Joined:
    published = Published(version, "card_arrival", "Cards", "Medium", 0.9, 0.5, False, "t")
    return Joined("t", published, None, "Cards" if agrees else "Payments", "Medium")


def test_live_accuracy_counts_one_version_since_a_baseline() -> None:
    metrics = FeedbackMetrics({})
    for agrees in (True, True, False):
        metrics.on_joined(_joined("v1", agrees), "Out of scope")
    metrics.on_joined(_joined("v2", False), "Out of scope")
    before = _live_accuracy(generate_latest(metrics.registry).decode(), "v1", (0.0, 0.0))
    assert before == (2.0, 3.0)
    metrics.on_joined(_joined("v1", True), "Out of scope")
    assert _live_accuracy(generate_latest(metrics.registry).decode(), "v1", before) == (1.0, 1.0)


def test_the_plot_is_written(tmp_path: Path) -> None:
    path = tmp_path / "round.png"
    _plot({"before": LiveAccuracy("v1", 10, 0.8), "after": LiveAccuracy("v2", 10, 0.9)}, path)
    assert path.stat().st_size > 1000
