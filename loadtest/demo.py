"""``triage demo``: broker, cache, model, worker, a Banking77 replay, the report, then a clean exit."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from rich.console import Console

from loadtest.processes import ChildProcess, leftovers, stop_signals
from loadtest.replay import ReplayConfig, new_run_id
from loadtest.report import Report
from loadtest.run import RunOptions, run_loadtest
from loadtest.settings import LoadtestSettings
from loadtest.source import load_source
from loadtest.stack import redis_reachable, start_worker, wait_ready
from triage.broker import EmbeddedBroker, free_port
from triage.checkpoint import CheckpointError, resolve_checkpoint
from worker.settings import WorkerSettings

__all__ = ["DemoOptions", "DemoResult", "cache_settings", "run_demo"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    """What the demo replays and where it looks for things.

    Attributes:
        brokers: Use this Kafka instead of starting the embedded broker.
        model_dir: Checkpoint to serve; None uses ``<models_dir>/latest`` and trains it when missing.
        count: Banking77 test tickets to replay.
        rate: Mean tickets/s (Poisson arrivals).
        duplicate_ratio: Share re-sending earlier texts (cache hits).
        malformed_ratio: Share of bad messages (dead letters).
        offtopic_ratio: Share of generated off-topic texts (greetings, spam, other domains).
        seed: Seeds the replay.
        live: Show the live progress display.
        verbose: Leave log events, warnings and progress bars on the screen instead of in ``demo.log``.
    """

    brokers: str | None = None
    model_dir: Path | None = None
    count: int = 3000
    rate: float = 50.0
    duplicate_ratio: float = 0.1
    malformed_ratio: float = 0.01
    offtopic_ratio: float = 0.05
    seed: int = 0
    live: bool = True
    verbose: bool = False


@dataclass(frozen=True)
class DemoResult:
    """The replay's report, what is still running afterwards (must be nothing), and how long it all took."""

    report: Report
    leftovers: list[str]
    seconds: float
    out_dir: Path


def _ensure_model(settings: LoadtestSettings, options: DemoOptions, console: Console, log_path: Path) -> Path:
    """The checkpoint to serve, training the quick preset first when ``latest`` does not exist yet."""
    if options.model_dir is not None:
        return resolve_checkpoint(options.model_dir)
    latest = settings.models_dir / "latest"
    try:
        return resolve_checkpoint(latest)
    except CheckpointError:
        if latest.exists() or latest.is_symlink():
            raise
    console.print(
        f"[bold]No checkpoint at {latest}[/] — training the quick preset (a few minutes on 2 cores)…"
    )
    from trainer.config import TrainArgs
    from trainer.train import run_training

    started = time.monotonic()
    # The trainer's progress bars and loss lines go to stdout as well as stderr.
    with ExitStack() as quiet:
        if not options.verbose:
            quiet.enter_context(_output_to(log_path, 1, 2))
        run_training(TrainArgs(preset="quick", data_dir=settings.data_dir, output=settings.models_dir))
    console.print(f"trained in {time.monotonic() - started:.0f}s")
    return resolve_checkpoint(latest)


@contextmanager
def _output_to(path: Path, *fds: int) -> Iterator[None]:
    """Point file descriptors (2: stderr; 1: stdout too) at ``path`` until the block ends.

    Log events, warnings and progress bars then stay off the screen, where only the report goes. The file
    descriptors are redirected, not ``sys.stderr``: structlog and the logging handler keep the stream they
    were configured with, and native libraries write to the descriptor directly.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [(fd, os.dup(fd)) for fd in fds]
    try:
        with path.open("ab") as handle:
            for fd in fds:
                os.dup2(handle.fileno(), fd)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


@contextmanager
def _broker(options: DemoOptions, out_dir: Path, console: Console) -> Iterator[str]:
    if options.brokers:
        console.print(f"Kafka: using {options.brokers}")
        yield options.brokers
        return
    with EmbeddedBroker(log_path=out_dir / "broker.log") as broker:
        console.print(f"Kafka: embedded broker on {broker.bootstrap}")
        yield broker.bootstrap


def cache_settings(worker: WorkerSettings, run_id: str, console: Console) -> dict[str, object]:
    """Redis when it answers, else the worker's in-process cache, said plainly.

    A per-run key prefix keeps the cache hits this run's own.
    """
    prefix = f"triage-demo-{run_id}"
    if worker.redis.backend == "memory":
        console.print("Cache: in-process memory (TRIAGE_REDIS__BACKEND=memory)")
        return {"backend": "memory", "key_prefix": prefix}
    problem = redis_reachable(worker.redis)
    if problem is None:
        console.print(f"Cache: Redis at {worker.redis.url}")
        return {"backend": "redis", "url": worker.redis.url, "key_prefix": prefix}
    console.print(
        f"[yellow]Cache: Redis is not reachable at {worker.redis.url} ({problem}); falling back to the worker's "
        "in-process cache (private to the worker, lost when it stops). Start Redis or set TRIAGE_REDIS__URL "
        "to use it.[/]"
    )
    return {"backend": "memory", "key_prefix": prefix}


def run_demo(
    settings: LoadtestSettings, worker: WorkerSettings, options: DemoOptions, console: Console | None = None
) -> DemoResult:
    """Run the whole stack once and return the replay's report; every child is stopped before returning.

    Raises:
        pydantic.ValidationError: The ratios add up to more than 1 (before anything starts).
    """
    console = console or Console()
    config = ReplayConfig(
        source="test",
        rate=options.rate,
        count=options.count,
        arrival="poisson",
        duplicate_ratio=options.duplicate_ratio,
        malformed_ratio=options.malformed_ratio,
        offtopic_ratio=options.offtopic_ratio,
        seed=options.seed,
    )
    run_id = new_run_id()
    out_dir = settings.results_dir / "loadtest" / f"demo-{run_id}"
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "demo.log"
    started = time.monotonic()
    with stop_signals(), ExitStack() as stack:
        if not options.verbose:
            console.print(f"Logs: {log_path} (--verbose shows them here)", soft_wrap=True)
            stack.enter_context(_output_to(log_path, 2))
        model = _ensure_model(settings, options, console, log_path)
        console.print(f"Model: {model}")
        brokers = stack.enter_context(_broker(options, out_dir, console))
        port = free_port()
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="triage-demo-")))
        child = start_worker(
            {
                "brokers": brokers,
                "group_id": f"triage-demo-{run_id}",
                "topics": settings.topics.model_dump(),
                "model_dir": str(model),
                "redis": cache_settings(worker, run_id, console),
                "web_host": "127.0.0.1",
                "web_port": port,
                "state_dir": str(state_dir),
                "reload_interval_s": 0,
            },
            out_dir / "worker.log",
        )
        stack.callback(_stop, child, console)
        console.print(f"Worker: starting (pid {child.pid}, log {out_dir / 'worker.log'})…")
        health = wait_ready(child, port)
        serving = health.get("model_serving") or {}
        console.print(
            f"Worker: ready, model {health.get('model_version')} on {serving.get('backend')} "
            f"({serving.get('reason')}; {time.monotonic() - started:.0f}s since the demo started)"
        )
        records = load_source("test", settings.data_dir, settings.hub_dataset)
        console.print(
            f"Replaying {options.count:,} messages at ~{options.rate:g}/s (Poisson): Banking77 test tickets, "
            f"{options.duplicate_ratio:.0%} repeats, {options.malformed_ratio:.0%} malformed, "
            f"{options.offtopic_ratio:.0%} off-topic…"
        )
        report = asyncio.run(
            run_loadtest(
                brokers,
                settings.topics,
                records,
                config,
                RunOptions(
                    metrics_url=f"http://127.0.0.1:{port}/metrics",
                    live=options.live,
                    out_root=out_dir,
                    console=console,
                ),
            )
        )
    return DemoResult(report, leftovers(), time.monotonic() - started, out_dir)


def _stop(child: ChildProcess, console: Console) -> None:
    console.print("Worker: stopping…")
    code = child.stop()
    console.print(f"Worker: stopped (exit code {code})")
