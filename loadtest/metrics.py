"""Read the worker's batch-size histogram from its Prometheus endpoint (diffed over a run)."""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from dataclasses import dataclass

import structlog
from prometheus_client.parser import text_string_to_metric_families

from loadtest.report import BatchSizes

__all__ = ["BatchHistogram", "counter_total", "parse_batch_histogram", "scrape_batch_histogram", "scrape_text"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BatchHistogram:
    """A Prometheus histogram of model batch sizes: cumulative bucket counts by upper bound."""

    name: str
    buckets: dict[float, float]
    count: float
    total: float

    def minus(self, earlier: BatchHistogram | None) -> BatchHistogram:
        """The batches observed since ``earlier`` (a scrape taken before the run)."""
        if earlier is None:
            return self
        return BatchHistogram(
            name=self.name,
            buckets={le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            count=self.count - earlier.count,
            total=self.total - earlier.total,
        )

    def as_batch_sizes(self) -> BatchSizes:
        """Per-bucket (not cumulative) batch counts, keyed by the bucket's upper bound."""
        histogram: dict[str, int] = {}
        previous = 0.0
        for le in sorted(self.buckets):
            label = "+Inf" if math.isinf(le) else f"{le:g}"
            histogram[label] = int(round(self.buckets[le] - previous))
            previous = self.buckets[le]
        batches = int(round(self.count))
        return BatchSizes(
            source="metrics",
            histogram=histogram,
            batches=batches,
            mean=round(self.total / self.count, 2) if self.count else None,
        )


def parse_batch_histogram(text: str) -> BatchHistogram | None:
    """The first histogram whose name mentions ``batch`` and ``size``, summed over its label sets."""
    for family in text_string_to_metric_families(text):
        if family.type != "histogram" or "batch" not in family.name or "size" not in family.name:
            continue
        buckets: dict[float, float] = {}
        count = total = 0.0
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
        return BatchHistogram(family.name, buckets, count, total)
    return None


def counter_total(text: str, name: str, label: str, values: set[str]) -> float:
    """Sum of counter ``name`` over the samples whose ``label`` is one of ``values``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        total += sum(
            s.value for s in family.samples if s.name.endswith("_total") and s.labels.get(label) in values
        )
    return total


def scrape_text(url: str, timeout: float = 3.0) -> str | None:
    """The Prometheus text at ``url``; None (with a warning) when it cannot be read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - operator-given URL
            return str(response.read().decode("utf-8", errors="replace"))
    except (urllib.error.URLError, OSError) as exc:
        log.warning("metrics_unreachable", url=url, error=str(exc)[:200])
        return None


def scrape_batch_histogram(url: str | None, timeout: float = 3.0) -> BatchHistogram | None:
    """Fetch ``url`` (the worker's /metrics); None when unreachable or it has no batch-size histogram."""
    text = scrape_text(url, timeout) if url else None
    if text is None:
        return None
    histogram = parse_batch_histogram(text)
    if histogram is None:
        log.warning("metrics_no_batch_histogram", url=url)
    return histogram
