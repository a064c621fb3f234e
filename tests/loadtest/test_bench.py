"""The worker benchmarks on the real broker and Redis, at smoke-test sizes: every figure present, nothing lost.

No speed is asserted (the machines are shared); only that each benchmark measures what it says it does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.bench.common import BenchResult
from loadtest.bench.harness import BenchStack, steady_rate
from loadtest.bench.pipeline import bench_batching, bench_latency, bench_noop, measure_saturation
from loadtest.source import SourceRecord, load_source
from triage.broker import EmbeddedBroker


def test_steady_rate_leaves_out_start_and_tail() -> None:
    times = [0.0, 5.0] + [10.0 + i * 0.01 for i in range(96)] + [20.0, 30.0]
    assert steady_rate(times) == pytest.approx(100.0, rel=0.02)
    assert steady_rate([1.0]) is None
    assert steady_rate([1.0, 1.0, 1.0]) is None


@pytest.fixture(scope="module")
def records(data_dir: Path) -> list[SourceRecord]:
    return load_source("test", data_dir)


@pytest.fixture
def stack(
    broker: EmbeddedBroker, redis_url: str, tiny_checkpoint: Path, records: list[SourceRecord], tmp_path: Path
) -> BenchStack:
    warmup = [SourceRecord(f"warm-up {r.text}", r.truth, {}) for r in records[:50]]
    return BenchStack(tmp_path, tiny_checkpoint, redis_url, warmup, brokers=broker.bootstrap, warmup_count=20)


def test_noop_drains_through_the_worker_and_the_bare_relay(stack: BenchStack, records: list[SourceRecord]) -> None:
    with stack:
        result = bench_noop(stack, records, count=400)
    worker, relay = result.rows
    assert worker["tickets"] == relay["tickets"] == 400
    assert worker["lost"] == 0 and worker["mean_batch"] > 1
    assert worker["tickets_per_s"] > 0 and relay["tickets_per_s"] > 0
    ratio = result.ratios["worker pipeline / bare Faust relay (same run)"]
    assert ratio == pytest.approx(worker["tickets_per_s"] / relay["tickets_per_s"], abs=0.01)


def test_batching_compares_one_at_a_time_with_micro_batches(stack: BenchStack, records: list[SourceRecord]) -> None:
    with stack:
        result = bench_batching(stack, records, count_single=100, count_batched=300, batch_size=32)
    single, batched = result.rows
    assert (single["batch_size"], single["mean_batch"]) == (1, 1.0)
    assert batched["mean_batch"] > 1
    assert single["lost"] == batched["lost"] == 0
    assert result.ratios["micro-batched / one at a time"] == pytest.approx(
        batched["tickets_per_s"] / single["tickets_per_s"], abs=0.01
    )


def test_latency_is_measured_at_each_load_level(stack: BenchStack, records: list[SourceRecord]) -> None:
    with stack:
        result = bench_latency(stack, records, saturation=40.0, duration_s=5.0, levels=(0.5,))
    (row,) = result.rows
    assert row["offered_per_s"] == 20.0 and row["lost"] == 0
    assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert any("p99 ≤ 250 ms at 50%" in note for note in result.notes)


def test_saturation_is_searched_down_from_the_burst_rate(stack: BenchStack, records: list[SourceRecord]) -> None:
    result = BenchResult("latency", "saturation search", {})
    with stack:
        saturation = measure_saturation(stack, records, result, duration_s=5.0, count=200, max_steps=1)
    burst, *offers = result.rows
    assert burst["tickets"] == 200 and burst["lost"] == 0
    assert offers[0]["offered_per_s"] == round(burst["tickets_per_s"], 1)
    assert 1 <= len(offers) <= 2 and all(row["lost"] == 0 for row in offers)
    kept_up = [row["offered_per_s"] for row in offers if row["sustained_per_s"] >= 0.95 * row["offered_per_s"]]
    if kept_up:
        assert saturation == pytest.approx(kept_up[0], abs=0.1)
    else:
        assert saturation == pytest.approx(min(offers[-1]["sustained_per_s"], offers[-1]["offered_per_s"]))
    assert 0 < saturation <= burst["tickets_per_s"]
