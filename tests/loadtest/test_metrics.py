"""Parsing the worker's batch-size histogram out of Prometheus text, and diffing two scrapes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from loadtest.metrics import BatchHistogram


def _scrape(observations: list[int]) -> str:
    registry = CollectorRegistry()
    histogram = Histogram(
        "triage_batch_size", "Messages per micro-batch.", buckets=(1, 8, 32, 64), registry=registry
    )
    for value in observations:
        histogram.observe(value)
    return generate_latest(registry).decode()


def test_histogram_is_diffed_into_per_bucket_counts() -> None:
    before = BatchHistogram.parse(_scrape([1, 1, 30]))
    after = BatchHistogram.parse(_scrape([1, 1, 30, 1, 5, 6, 20, 64, 64]))
    assert before is not None and after is not None
    sizes = after.minus(before).as_batch_sizes()
    assert sizes.source == "metrics"
    assert sizes.histogram == {"1": 1, "8": 2, "32": 1, "64": 2, "+Inf": 0}
    assert sizes.batches == 6
    assert sizes.mean == round((1 + 5 + 6 + 20 + 64 + 64) / 6, 2)


def test_text_without_a_batch_histogram_gives_none() -> None:
    registry = CollectorRegistry()
    Histogram("triage_inference_seconds", "Model time.", registry=registry).observe(0.1)
    assert BatchHistogram.parse(generate_latest(registry).decode()) is None
