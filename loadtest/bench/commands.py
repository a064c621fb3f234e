"""``triage bench``: each subcommand measures its configurations side by side, prints ratios, writes JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["bench_group"]


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--out",
            "out_dir",
            type=click.Path(path_type=Path),
            default=None,
            help="Where <bench>.json goes (default: <TRIAGE_RESULTS_DIR>/bench).",
        ),
        click.option(
            "--model",
            "model_dir",
            type=click.Path(path_type=Path),
            default=None,
            help="Checkpoint (default: <TRIAGE_MODELS_DIR>/latest).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _stack_options(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--brokers", default=None, help="Use this Kafka instead of the embedded broker (topics are per run)."
    )(func)


def _exported_backends(model_dir: Path) -> list[str]:
    """The ONNX serving paths ``triage export`` wrote into this checkpoint."""
    from triage.classifier import ONNX_FILES

    return [backend for backend, file in ONNX_FILES.items() if (model_dir / file).is_file()]


class _Context:
    """Settings, data and output folder, built once per command."""

    def __init__(self, out_dir: Path | None, model_dir: Path | None, need_model: bool) -> None:
        from loadtest.settings import LoadtestSettings
        from loadtest.source import SourceRecord, load_source
        from triage.checkpoint import resolve_checkpoint
        from worker.settings import WorkerSettings

        self.settings = LoadtestSettings()
        self.worker_settings = WorkerSettings()
        self.out_dir = out_dir or self.settings.results_dir / "bench"
        model = model_dir or self.settings.models_dir / "latest"
        self.model_dir = resolve_checkpoint(model) if need_model else model
        self.test = load_source("test", self.settings.data_dir, self.settings.hub_dataset)
        self.train = load_source("train", self.settings.data_dir, self.settings.hub_dataset)
        self.warmup = [SourceRecord(f"warm-up {r.text}", r.truth, {}) for r in self.test[:300]]

    def stack(self, brokers: str | None) -> Any:
        from loadtest.bench.harness import BenchStack

        return BenchStack(
            self.out_dir / "work",
            self.model_dir,
            self.worker_settings.redis.url,
            self.warmup,
            brokers=brokers,
        )

    def finish(self, result: Any) -> None:
        result.print()
        click.echo(f"written: {result.write(self.out_dir)}")


def _context(out_dir: Path | None, model_dir: Path | None, need_model: bool = True) -> _Context:
    from loadtest.source import SourceError
    from triage.checkpoint import CheckpointError

    try:
        return _Context(out_dir, model_dir, need_model)
    except (CheckpointError, SourceError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("bench")
def bench_group() -> None:
    """Benchmarks: model offline, worker batching, no-op ceiling, cache effect, latency vs load."""


@bench_group.command("model")
@_common
@click.option(
    "--texts", type=click.IntRange(min=16), default=400, show_default=True, help="Test texts to time."
)
@click.option(
    "--repeats", type=click.IntRange(min=1), default=2, show_default=True, help="Passes (best kept)."
)
def model_cmd(out_dir: Path | None, model_dir: Path | None, texts: int, repeats: int) -> None:
    """Model texts/s one at a time vs batch 8/32/64, bucketing on/off, torch and ONNX (fp32, int8)."""
    from loadtest.bench.model import bench_model

    ctx = _context(out_dir, model_dir)
    ctx.finish(bench_model(ctx.model_dir, [r.text for r in ctx.test[:texts]], repeats=repeats))


@bench_group.command("batching")
@_common
@_stack_options
@click.option("--count-single", type=click.IntRange(min=100), default=1000, show_default=True)
@click.option("--count-batched", type=click.IntRange(min=100), default=3000, show_default=True)
@click.option(
    "--batch-size", type=click.IntRange(min=2), default=64, show_default=True, help="Micro-batch size to compare."
)
@click.option(
    "--backend",
    "backends",
    type=click.Choice(["onnx", "onnx-int8"]),
    multiple=True,
    help="Also run the micro-batched worker on this serving path [every one `triage export` wrote].",
)
def batching_cmd(
    out_dir: Path | None,
    model_dir: Path | None,
    brokers: str | None,
    count_single: int,
    count_batched: int,
    batch_size: int,
    backends: tuple[str, ...],
) -> None:
    """Worker tickets/s with batch_size=1 vs micro-batches (same model, cache off), torch and ONNX."""
    from loadtest.bench.pipeline import bench_batching

    ctx = _context(out_dir, model_dir)
    with ctx.stack(brokers) as stack:
        ctx.finish(
            bench_batching(
                stack,
                ctx.test,
                count_single,
                count_batched,
                batch_size,
                backends=backends or _exported_backends(ctx.model_dir),
            )
        )


@bench_group.command("noop")
@_common
@_stack_options
@click.option("--count", type=click.IntRange(min=100), default=10000, show_default=True)
def noop_cmd(out_dir: Path | None, model_dir: Path | None, brokers: str | None, count: int) -> None:
    """Pipeline ceiling with the no-op model: Kafka + schemas + cache + routing."""
    from loadtest.bench.pipeline import bench_noop

    ctx = _context(out_dir, model_dir, need_model=False)
    with ctx.stack(brokers) as stack:
        ctx.finish(bench_noop(stack, ctx.train, count))


@bench_group.command("cache")
@_common
@_stack_options
@click.option("--count", type=click.IntRange(min=100), default=2500, show_default=True)
def cache_cmd(out_dir: Path | None, model_dir: Path | None, brokers: str | None, count: int) -> None:
    """Worker tickets/s at duplicate ratios 0, 0.3 and 0.6 (Redis cache on)."""
    from loadtest.bench.pipeline import bench_cache

    ctx = _context(out_dir, model_dir)
    with ctx.stack(brokers) as stack:
        ctx.finish(bench_cache(stack, ctx.test, count))


@bench_group.command("latency")
@_common
@_stack_options
@click.option(
    "--saturation",
    type=click.FloatRange(min=1),
    default=None,
    help="Known saturation tickets/s (default: measured first with a backlog).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=5),
    default=20.0,
    show_default=True,
    help="Seconds of traffic per load level.",
)
@click.option(
    "--level",
    "levels",
    type=click.FloatRange(min=0.01, max=2.0),
    multiple=True,
    help="Fraction of saturation to offer (repeatable) [0.25, 0.5, 0.75, 1].",
)
def latency_cmd(
    out_dir: Path | None,
    model_dir: Path | None,
    brokers: str | None,
    saturation: float | None,
    duration: float,
    levels: tuple[float, ...],
) -> None:
    """p50/p99 end to end at 25/50/75/100% of measured saturation."""
    from loadtest.bench.pipeline import bench_latency

    ctx = _context(out_dir, model_dir)
    with ctx.stack(brokers) as stack:
        ctx.finish(bench_latency(stack, ctx.train, saturation, duration, levels or (0.25, 0.5, 0.75, 1.0)))


@bench_group.command("all")
@_common
@_stack_options
def all_cmd(out_dir: Path | None, model_dir: Path | None, brokers: str | None) -> None:
    """Every benchmark with its defaults, in one run; the worker's rates are also compared with the model's."""
    from loadtest.bench.model import bench_model
    from loadtest.bench.pipeline import bench_batching, bench_cache, bench_latency, bench_noop, compare_with_offline

    ctx = _context(out_dir, model_dir)
    model = bench_model(ctx.model_dir, [r.text for r in ctx.test[:400]])
    ctx.finish(model)
    with ctx.stack(brokers) as stack:
        batching = bench_batching(stack, ctx.test, backends=_exported_backends(ctx.model_dir))
        compare_with_offline(batching, model)
        ctx.finish(batching)
        ctx.finish(bench_noop(stack, ctx.train))
        ctx.finish(bench_cache(stack, ctx.test))
        ctx.finish(bench_latency(stack, ctx.train))
