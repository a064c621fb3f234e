"""The benchmarks on the real broker, Redis and tiny checkpoint, at smoke-test sizes: every figure there, none lost.

No speed is asserted (the machines are shared); only that each benchmark measures what it says it does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from inference.classifier import resolve_backend
from loadtest.bench.gpu_check import main as gpu_check_main
from loadtest.bench.model import MODES, bench_model
from loadtest.bench.worker import Bench, bench_batching, bench_compare, bench_latency, bench_noop
from loadtest.broker import EmbeddedBroker
from loadtest.report import steady_rate
from loadtest.source import SourceRecord, load_source
from triage.cli import main

# Tansu answers a JoinGroup after half the session timeout (the smallest allowed keeps starts short); the model on a
# thread of the worker saves a second process start. Neither changes what is checked.
FAST_START = {"session_timeout_s": 6, "torch_threads": 1, "model_process": False}


def test_steady_rate_leaves_out_start_and_tail() -> None:
    times = [0.0, 5.0] + [10.0 + i * 0.01 for i in range(96)] + [20.0, 30.0]
    assert steady_rate(times) == pytest.approx(100.0, rel=0.02)
    assert steady_rate([1.0]) is None
    assert steady_rate([1.0, 1.0, 1.0]) is None


def test_bench_lists_its_subcommands() -> None:
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("model", "batching", "compare", "latency", "all"):
        assert f"  {name} " in result.output


@pytest.fixture(scope="module")
def records(data_dir: Path) -> list[SourceRecord]:
    return load_source("test", data_dir)


@pytest.fixture
def stack(
    broker: EmbeddedBroker, redis_url: str, tiny_checkpoint: Path, records: list[SourceRecord], tmp_path: Path
) -> Bench:
    return Bench(tmp_path, tiny_checkpoint.resolve(), records, records, redis_url, broker.bootstrap, FAST_START,
                 warmup_count=20)


def test_model_bench_times_every_backend_batch_and_mode(tiny_checkpoint: Path, records: list[SourceRecord]) -> None:
    result = bench_model(tiny_checkpoint.resolve(), [r.text for r in records[:40]], batch_sizes=(8,), repeats=1)
    backends = {row["backend"] for row in result.rows}
    assert "torch" in backends
    assert {(row["backend"], row["mode"]) for row in result.rows} == {(b, m) for b in backends for m in MODES}
    assert all(row["texts_per_s"] > 0 and row["batch"] == 8 for row in result.rows)
    torch_rows = {row["mode"]: row["texts_per_s"] for row in result.rows if row["backend"] == "torch"}
    # rows keep one decimal and ratios two, so slow runs (a few texts/s) differ by more than 0.01 in absolute terms
    assert result.ratios["torch batch 8 bucketing on / off"] == pytest.approx(
        torch_rows["offline, bucketed"] / torch_rows["offline, unbucketed"], rel=0.02
    )
    assert result.notes[-1].startswith("one text per call")


def test_model_bench_shows_the_export_s_one_text_figures_instead_of_timing_them(
    tiny_checkpoint: Path, records: list[SourceRecord], tmp_path: Path
) -> None:
    checkpoint = Path(shutil.copytree(tiny_checkpoint.resolve(), tmp_path / "ckpt", copy_function=os.symlink))
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    metrics["export"] = {"bench_texts": 300, "threads": 1, "engines": {"torch": {"single_texts_per_second": 74.8}}}
    (checkpoint / "metrics.json").unlink()  # a link to the session's checkpoint: replaced, not written through
    (checkpoint / "metrics.json").write_text(json.dumps(metrics))
    result = bench_model(checkpoint, [r.text for r in records[:16]], batch_sizes=(8,), backends=("torch",), repeats=1)
    assert result.notes[-1] == "one text per call, from `triage export` (300 texts, 1 threads): torch 74.8/s"


def test_batching_compares_the_default_worker_with_a_naive_consumer(stack: Bench) -> None:
    result = bench_batching(stack, count_single=40, count_batched=120, batch_size=16)
    naive, single, batched, default = result.rows
    assert [row["tickets"] for row in result.rows] == [40, 40, 120, 120]
    assert all(row["lost"] == 0 and row["tickets_per_s"] > 0 for row in result.rows)
    assert naive["config"] == "naive consumer" and naive["intent_acc"] == single["intent_acc"] > 0
    assert (single["batch_size"], single["mean_batch"]) == (1, 1.0)
    assert batched["mean_batch"] > 1 and default["mean_batch"] > 1
    served = result.params["default_backend"]["backend"]
    assert (default["config"], default["backend"]) == (f"default (auto: {served})", "auto")
    assert result.ratios[f"{default['config']} / naive consumer"] == pytest.approx(
        default["tickets_per_s"] / naive["tickets_per_s"], abs=0.01
    )
    assert result.ratios["micro-batched / one at a time"] == pytest.approx(
        batched["tickets_per_s"] / single["tickets_per_s"], abs=0.01
    )
    assert any("≥ 6× the naive per-ticket fp32 consumer" in note for note in result.notes)


def test_compare_drains_the_model_and_the_baseline_in_alternating_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The order and the ratio, with each drain's rate faked (the drain itself is the batching test's)."""
    rates = iter([100.0, 80.0, 90.0, 110.0])
    drained: list[tuple[str, Path]] = []

    def drain(bench: Bench, label: str, *_args: Any, **_settings: Any) -> Any:
        drained.append((label, bench.model_dir))
        return SimpleNamespace(counts=SimpleNamespace(produced=60, lost=0), batch_sizes=SimpleNamespace(mean=4.0),
                               throughput=SimpleNamespace(steady_per_s=next(rates)),
                               accuracy=SimpleNamespace(intent=0.5), cache=SimpleNamespace(hit_ratio=0.0))

    monkeypatch.setattr(Bench, "drain", drain)
    model, baseline = tmp_path / "model", tmp_path / "baseline"
    result = bench_compare(Bench(tmp_path, model, [], [], "redis://unused"), baseline, pairs=2, count=60)
    assert drained == [("model-0", model), ("baseline-0", baseline), ("baseline-1", baseline), ("model-1", model)]
    assert [row["config"] for row in result.rows] == [
        "model, pair 1", "baseline, pair 1", "baseline, pair 2", "model, pair 2"]
    assert result.ratios["model / baseline, means"] == pytest.approx((100 + 110) / (80 + 90), abs=0.01)


def test_noop_drains_the_pipeline_without_a_model(stack: Bench) -> None:
    result = bench_noop(stack, count=300)
    (row,) = result.rows
    assert row["tickets"] == 300 and row["lost"] == 0 and row["tickets_per_s"] > 0 and row["mean_batch"] > 1
    assert any(note.startswith("design target: ≥ 5,000 tickets/s") for note in result.notes)


def test_latency_searches_saturation_down_from_the_burst_rate(stack: Bench) -> None:
    """Workers with the no-op model (no model to import, the search is the same); a level itself is offered in the
    gpu-check rehearsal below (50% of a known rate)."""
    noop = dataclasses.replace(stack, worker={**FAST_START, "model_backend": "noop"})
    result = bench_latency(noop, duration_s=5.0, levels=(), saturation_count=100, max_steps=0)
    burst, offer = result.rows
    assert burst["tickets"] == 100 and burst["lost"] == offer["lost"] == 0
    assert offer["offered_per_s"] == round(burst["tickets_per_s"], 1) and offer["sustained_per_s"] > 0
    kept_up = offer["sustained_per_s"] >= 0.95 * offer["offered_per_s"]
    expected = offer["offered_per_s"] if kept_up else offer["sustained_per_s"]
    assert result.params["saturation_per_s"] == pytest.approx(expected, abs=0.1)


def test_gpu_check_without_cuda_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(gpu_check_main, [])
    assert result.exit_code == 2
    assert "needs a CUDA device" in result.output and "--device cpu" in result.output


def test_gpu_check_rehearses_every_step_on_cpu(
    tiny_checkpoint: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TRIAGE_SESSION_TIMEOUT_S", "6")
    monkeypatch.setenv("TRIAGE_MODEL_PROCESS", "false")
    result = CliRunner().invoke(gpu_check_main, [
        "--device", "cpu", "--model", str(tiny_checkpoint), "--work", str(tmp_path), "--count", "100",
        "--duration", "5", "--batch-size", "16",
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["device"] == "cpu" and figures["version"] == tiny_checkpoint.resolve().name
    assert figures["served"] == resolve_backend(tiny_checkpoint.resolve(), "auto", "cpu").as_dict()
    assert figures["drain_tickets"] == 100 and figures["drain_tickets_per_s"] > 0
    assert 0 < figures["p50_ms_at_50pct"] <= figures["p99_ms_at_50pct"]
    assert figures["offered_per_s"] == pytest.approx(figures["drain_tickets_per_s"] / 2, abs=0.1)
    assert 0 < figures["served_intent_accuracy"] <= 1
