"""``triage bench``: each subcommand measures its configurations side by side, prints ratios, writes JSON."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["bench_group"]

_OUT = click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
                    help="Where <bench>.json goes (default: <TRIAGE_RESULTS_DIR>/bench).")
_MODEL = click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
                      help="Checkpoint (default: <TRIAGE_MODELS_DIR>/latest).")


@click.group("bench", context_settings={"show_default": True})
def bench_group() -> None:
    """Benchmarks: the model offline; the worker's backlog drains (batching, a baseline, no-op ceiling) and latency vs
    load."""


@bench_group.command("model")
@_OUT
@_MODEL
def model_cmd(out_dir: Path | None, model_dir: Path | None) -> None:
    """Model texts/s on 400 test texts in batches of 8/32/64, offline (bucketed or not) and as micro-batches, torch
    and ONNX."""
    from loadtest.bench.model import bench_model
    from loadtest.bench.worker import Bench

    bench = Bench.load(out_dir, model_dir)
    bench.finish(bench_model(bench.model_dir, [r.text for r in bench.test[:400]]))


@bench_group.command("batching")
@_OUT
@_MODEL
@click.option("--count-single", type=click.IntRange(min=100), default=1000)
@click.option("--count-batched", type=click.IntRange(min=100), default=3000)
@click.option("--batch-size", type=click.IntRange(min=2), default=128, help="Micro-batch size to compare.")
def batching_cmd(
    out_dir: Path | None, model_dir: Path | None, count_single: int, count_batched: int, batch_size: int
) -> None:
    """Worker tickets/s: a naive per-ticket consumer vs batch_size=1 vs micro-batches (torch, then every exported
    ONNX backend) vs defaults (cache off)."""
    from loadtest.bench.worker import Bench, bench_batching

    bench = Bench.load(out_dir, model_dir)
    with bench.started() as live:
        bench.finish(bench_batching(live, count_single, count_batched, batch_size, bench.exported()))


@bench_group.command("compare")
@_OUT
@_MODEL
@click.option("--baseline", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The checkpoint to compare with, e.g. a copy without scope.safetensors.")
@click.option("--pairs", type=click.IntRange(min=1), default=4)
@click.option("--count", type=click.IntRange(min=100), default=2000, help="Tickets per drain.")
def compare_cmd(out_dir: Path | None, model_dir: Path | None, baseline: Path, pairs: int, count: int) -> None:
    """Default worker tickets/s with --model vs --baseline, drains interleaved in alternating order (cache off)."""
    from inference.checkpoint import resolve_checkpoint
    from loadtest.bench.worker import Bench, bench_compare

    bench = Bench.load(out_dir, model_dir)
    with bench.started() as live:
        bench.finish(bench_compare(live, resolve_checkpoint(baseline), pairs, count))


@bench_group.command("feedback")
@_OUT
@_MODEL
@click.option("--pairs", type=click.IntRange(min=1), default=2)
@click.option("--count", type=click.IntRange(min=100), default=2000, help="Tickets per drain.")
def feedback_cmd(out_dir: Path | None, model_dir: Path | None, pairs: int, count: int) -> None:
    """Default worker tickets/s with the feedback process consuming its output vs alone, drains interleaved."""
    from loadtest.bench.worker import Bench, bench_feedback

    bench = Bench.load(out_dir, model_dir)
    with bench.started() as live:
        bench.finish(bench_feedback(live, pairs, count))


@bench_group.command("noop")
@_OUT
def noop_cmd(out_dir: Path | None) -> None:
    """Pipeline ceiling with the no-op model on 10,000 tickets: Kafka + schemas + cache + routing."""
    from loadtest.bench.worker import Bench, bench_noop

    bench = Bench.load(out_dir, None, need_model=False)
    with bench.started() as live:
        bench.finish(bench_noop(live))


@bench_group.command("latency")
@_OUT
@_MODEL
@click.option("--saturation", type=click.FloatRange(min=1), default=None,
              help="Known saturation tickets/s, so runs compare at the same rates (default: measured first).")
@click.option("--duration", type=click.FloatRange(min=5), default=20.0, help="Seconds of traffic per load level.")
@click.option("--level", "levels", type=click.FloatRange(min=0.01, max=2.0), multiple=True,
              default=(0.25, 0.5, 0.75, 1.0), help="Fraction of saturation to offer (repeatable).")
def latency_cmd(
    out_dir: Path | None, model_dir: Path | None, saturation: float | None, duration: float, levels: tuple[float, ...]
) -> None:
    """p50/p99 end to end at 25/50/75/100% of saturation (searched down from the burst rate unless given)."""
    from loadtest.bench.worker import Bench, bench_latency

    bench = Bench.load(out_dir, model_dir)
    with bench.started() as live:
        bench.finish(bench_latency(live, saturation, duration_s=duration, levels=levels))


@bench_group.command("all")
@_OUT
@_MODEL
def all_cmd(out_dir: Path | None, model_dir: Path | None) -> None:
    """Every benchmark with its defaults, in one run; the worker's rates are also compared with the model's."""
    from loadtest.bench.model import bench_model
    from loadtest.bench.worker import Bench, bench_batching, bench_latency, bench_noop, compare_with_offline

    bench = Bench.load(out_dir, model_dir)
    model = bench_model(bench.model_dir, [r.text for r in bench.test[:400]])
    bench.finish(model)
    with bench.started() as live:
        batching = bench_batching(live, backends=bench.exported())
        compare_with_offline(batching, model)
        bench.finish(batching)
        bench.finish(bench_noop(live))
        bench.finish(bench_latency(live))
