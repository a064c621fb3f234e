"""The worker's Prometheus metrics as the load tools read them: its batch-size histogram and its output count."""

from __future__ import annotations

import math
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

import structlog
from prometheus_client.parser import text_string_to_metric_families

from loadtest.report import BatchSizes

__all__ = ["BATCH_SIZE", "RECORDS_OUT", "BatchHistogram", "metric_total", "records_out", "scrape"]

log = structlog.get_logger(__name__)

BATCH_SIZE = "triage_batch_size"  # the worker's histogram of messages per micro-batch
RECORDS_OUT = "triage_records_out"  # the worker's counter of records the broker acknowledged, by topic


def scrape(url: str | None, timeout: float = 3.0) -> str:
    """The Prometheus text at ``url``; empty without a URL, or (with a warning) when it cannot be read."""
    if not url:
        return ""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - operator-given URL
            return str(response.read().decode("utf-8", errors="replace"))
    except OSError as exc:
        log.warning("metrics_unreachable", url=url, error=str(exc)[:200])
        return ""


@dataclass(frozen=True)
class BatchHistogram:
    """The batch-size histogram: cumulative bucket counts by upper bound, summed over label sets."""

    buckets: dict[float, float]
    count: float
    total: float

    @classmethod
    def parse(cls, text: str) -> BatchHistogram | None:
        """The ``triage_batch_size`` histogram out of Prometheus text; None when the text has none."""
        families = [f for f in text_string_to_metric_families(text) if f.name == BATCH_SIZE and f.type == "histogram"]
        if not families:
            return None
        buckets: defaultdict[float, float] = defaultdict(float)
        totals: defaultdict[str, float] = defaultdict(float)  # by suffix: count, sum
        for sample in families[0].samples:
            if sample.name.endswith("_bucket"):
                buckets[float(sample.labels["le"])] += sample.value
            else:
                totals[sample.name.rsplit("_", 1)[-1]] += sample.value
        return cls(dict(buckets), totals["count"], totals["sum"])

    def minus(self, earlier: BatchHistogram | None) -> BatchHistogram:
        """The batches observed since ``earlier`` (a scrape taken before the run)."""
        if earlier is None:
            return self
        buckets = {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()}
        return BatchHistogram(buckets, self.count - earlier.count, self.total - earlier.total)

    def as_batch_sizes(self) -> BatchSizes:
        """Per-bucket (not cumulative) batch counts, keyed by the bucket's upper bound."""
        histogram: dict[str, int] = {}
        previous = 0.0
        for le in sorted(self.buckets):
            histogram["+Inf" if math.isinf(le) else f"{le:g}"] = int(round(self.buckets[le] - previous))
            previous = self.buckets[le]
        mean = round(self.total / self.count, 2) if self.count else None
        return BatchSizes(source="metrics", histogram=histogram, batches=int(round(self.count)), mean=mean)


def metric_total(text: str, sample: str) -> float:
    """Sum of every sample named exactly ``sample`` (0.0 when there is none)."""
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == sample)


def records_out(text: str, topics: set[str]) -> float:
    """Records the worker published to any of ``topics`` (its ``triage_records_out`` counter)."""
    families = [family for family in text_string_to_metric_families(text) if family.name == RECORDS_OUT]
    return sum(sample.value for family in families for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("topic") in topics)
