"""Read values out of a worker's Prometheus ``/metrics`` text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["metric_sum", "metric_labels"]


def metric_sum(text: str, sample: str, **labels: str) -> float:
    """Sum of every sample named ``sample`` whose labels include ``labels`` (0.0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def metric_labels(text: str) -> list[dict[str, str]]:
    """The label sets of every sample, to check what the worker exposes."""
    return [dict(s.labels) for family in text_string_to_metric_families(text) for s in family.samples]
