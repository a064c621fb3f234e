"""The worker benchmarks on the real broker and Redis, at smoke-test sizes: every figure present, nothing lost.

No speed is asserted (the machines are shared); only that each benchmark measures what it says it does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from loadtest.bench.common import BenchResult
from loadtest.bench.gpu_check import main as gpu_check_main
from loadtest.bench.harness import BenchStack, steady_rate
from loadtest.bench.pipeline import bench_batching, bench_latency, bench_noop, measure_saturation
from loadtest.source import SourceRecord, load_source
from triage.broker import EmbeddedBroker
from triage.classifier import resolve_backend


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


def test_batching_compares_the_default_worker_with_a_naive_consumer(
    stack: BenchStack, records: list[SourceRecord]
) -> None:
    with stack:
        result = bench_batching(stack, records, count_single=100, count_batched=300, batch_size=32)
    naive, single, batched, default = result.rows
    assert naive["config"] == "naive consumer" and naive["tickets"] == 100 and naive["tickets_per_s"] > 0
    assert (single["batch_size"], single["mean_batch"]) == (1, 1.0)
    assert batched["mean_batch"] > 1 and default["mean_batch"] > 1 and default["backend"] == "auto"
    assert single["lost"] == batched["lost"] == default["lost"] == 0
    served = result.params["default_backend"]["backend"]
    assert default["config"] == f"default (auto: {served})"
    assert result.ratios[f"{default['config']} / naive consumer"] == pytest.approx(
        default["tickets_per_s"] / naive["tickets_per_s"], abs=0.01
    )
    assert result.ratios["micro-batched / one at a time"] == pytest.approx(
        batched["tickets_per_s"] / single["tickets_per_s"], abs=0.01
    )
    assert any("≥ 6× the naive per-ticket fp32 consumer" in note for note in result.notes)


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


def test_gpu_check_without_cuda_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(gpu_check_main, [])
    assert result.exit_code == 2
    assert "needs a CUDA device" in result.output and "--device cpu" in result.output


def test_gpu_check_rehearses_every_step_on_cpu(
    tiny_checkpoint: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(gpu_check_main, [
        "--device", "cpu", "--model", str(tiny_checkpoint), "--work", str(tmp_path), "--count", "200",
        "--duration", "5", "--batch-size", "32",
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["device"] == "cpu" and figures["version"] == tiny_checkpoint.resolve().name
    assert figures["served"] == resolve_backend(tiny_checkpoint.resolve(), "auto", "cpu").as_dict()
    assert figures["drain_tickets"] == 200 and figures["drain_tickets_per_s"] > 0
    assert 0 < figures["p50_ms_at_50pct"] <= figures["p99_ms_at_50pct"]
    assert figures["offered_per_s"] == pytest.approx(figures["drain_tickets_per_s"] / 2, abs=0.1)
    assert 0 < figures["served_intent_accuracy"] <= 1
