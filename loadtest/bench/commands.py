"""``triage bench``: each subcommand measures its configurations side by side, prints ratios, writes JSON."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from loadtest.bench.result import BenchResult
    from loadtest.bench.worker import BenchStack
    from loadtest.source import SourceRecord

__all__ = ["BenchSetup", "bench_group"]

_OUT = click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
                    help="Where <bench>.json goes (default: <TRIAGE_RESULTS_DIR>/bench).")
_MODEL = click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
                      help="Checkpoint (default: <TRIAGE_MODELS_DIR>/latest).")


@dataclass(frozen=True)
class BenchSetup:
    """What every benchmark needs, built once: the checkpoint, Banking77, the cache, where results go."""

    out_dir: Path
    model_dir: Path
    test: list[SourceRecord]
    train: list[SourceRecord]
    redis_url: str

    @classmethod
    def load(cls, out_dir: Path | None, model_dir: Path | None, need_model: bool = True) -> BenchSetup:
        """``need_model=False``: the no-op bench, which serves no checkpoint, does not require one."""
        from inference.checkpoint import resolve_checkpoint
        from loadtest.settings import LoadtestSettings
        from loadtest.source import load_source
        from worker.settings import WorkerSettings

        settings = LoadtestSettings()
        model = model_dir or settings.models_dir / "latest"
        return cls(
            out_dir or settings.results_dir / "bench", resolve_checkpoint(model) if need_model else model,
            load_source("test", settings.data_dir, settings.hub_dataset),
            load_source("train", settings.data_dir, settings.hub_dataset), WorkerSettings().redis.url,
        )

    @contextmanager
    def stack(self, **worker: Any) -> Iterator[BenchStack]:
        """Workers on an embedded broker for the block, with ``worker`` settings, warmed up with test texts marked so
        they never repeat a measured one; Ctrl-C or SIGTERM stop them in order."""
        from loadtest.bench.worker import BenchStack
        from loadtest.broker import EmbeddedBroker
        from loadtest.processes import stop_signals
        from loadtest.source import SourceRecord

        work = self.out_dir / "work"
        work.mkdir(parents=True, exist_ok=True)
        warmup = [SourceRecord(f"warm-up {r.text}", r.truth, {}) for r in self.test[:300]]
        with stop_signals(), EmbeddedBroker(log_path=work / "broker.log") as broker:
            yield BenchStack(broker.bootstrap, work, self.model_dir, self.redis_url, warmup, worker=worker)

    def exported(self) -> list[str]:
        """The ONNX serving paths this checkpoint ships (``triage train`` and ``triage export`` write them)."""
        from inference.classifier import ONNX_FILES

        return [backend for backend, file in ONNX_FILES.items() if (self.model_dir / file).is_file()]

    def finish(self, result: BenchResult) -> None:
        result.print()
        click.echo(f"written: {result.write(self.out_dir)}")


@click.group("bench")
def bench_group() -> None:
    """Benchmarks: the model offline; the worker's backlog drains (batching, no-op ceiling) and latency vs load."""


@bench_group.command("model")
@_OUT
@_MODEL
def model_cmd(out_dir: Path | None, model_dir: Path | None) -> None:
    """Model texts/s on 400 test texts in batches of 8/32/64, offline (bucketed or not) and as micro-batches, torch
    and ONNX."""
    from loadtest.bench.model import bench_model

    bench = BenchSetup.load(out_dir, model_dir)
    bench.finish(bench_model(bench.model_dir, [r.text for r in bench.test[:400]]))


@bench_group.command("batching")
@_OUT
@_MODEL
@click.option("--count-single", type=click.IntRange(min=100), default=1000, show_default=True)
@click.option("--count-batched", type=click.IntRange(min=100), default=3000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True,
              help="Micro-batch size to compare.")
def batching_cmd(
    out_dir: Path | None, model_dir: Path | None, count_single: int, count_batched: int, batch_size: int
) -> None:
    """Worker tickets/s: a naive per-ticket consumer vs batch_size=1 vs micro-batches (torch, then every exported
    ONNX backend) vs defaults (cache off)."""
    from loadtest.bench.worker import bench_batching

    bench = BenchSetup.load(out_dir, model_dir)
    with bench.stack() as stack:
        bench.finish(bench_batching(stack, bench.test, count_single, count_batched, batch_size, bench.exported()))


@bench_group.command("noop")
@_OUT
def noop_cmd(out_dir: Path | None) -> None:
    """Pipeline ceiling with the no-op model on 10,000 tickets: Kafka + schemas + cache + routing."""
    from loadtest.bench.worker import bench_noop

    bench = BenchSetup.load(out_dir, None, need_model=False)
    with bench.stack() as stack:
        bench.finish(bench_noop(stack, bench.train))


@bench_group.command("latency")
@_OUT
@_MODEL
@click.option("--duration", type=click.FloatRange(min=5), default=20.0, show_default=True,
              help="Seconds of traffic per load level.")
@click.option("--level", "levels", type=click.FloatRange(min=0.01, max=2.0), multiple=True,
              default=(0.25, 0.5, 0.75, 1.0), show_default=True, help="Fraction of saturation to offer (repeatable).")
def latency_cmd(
    out_dir: Path | None, model_dir: Path | None, duration: float, levels: tuple[float, ...]
) -> None:
    """p50/p99 end to end at 25/50/75/100% of saturation, searched down from the burst rate first."""
    from loadtest.bench.worker import bench_latency

    bench = BenchSetup.load(out_dir, model_dir)
    with bench.stack() as stack:
        bench.finish(bench_latency(stack, bench.train, duration_s=duration, levels=levels))


@bench_group.command("all")
@_OUT
@_MODEL
def all_cmd(out_dir: Path | None, model_dir: Path | None) -> None:
    """Every benchmark with its defaults, in one run; the worker's rates are also compared with the model's."""
    from loadtest.bench.model import bench_model
    from loadtest.bench.worker import bench_batching, bench_latency, bench_noop, compare_with_offline

    bench = BenchSetup.load(out_dir, model_dir)
    model = bench_model(bench.model_dir, [r.text for r in bench.test[:400]])
    bench.finish(model)
    with bench.stack() as stack:
        batching = bench_batching(stack, bench.test, backends=bench.exported())
        compare_with_offline(batching, model)
        bench.finish(batching)
        bench.finish(bench_noop(stack, bench.train))
        bench.finish(bench_latency(stack, bench.train))
