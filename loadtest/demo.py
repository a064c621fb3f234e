"""``triage demo``: broker, cache, model, worker, a replay of the data's test split, the report, then a clean exit."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

from rich.console import Console

from inference.checkpoint import CheckpointError, resolve_checkpoint
from loadtest.broker import EmbeddedBroker
from loadtest.processes import leftovers, stop_signals
from loadtest.replay import ReplayConfig, new_run_id
from loadtest.run import run_loadtest
from loadtest.settings import LoadtestSettings
from loadtest.source import load_source
from loadtest.stack import running_worker
from loadtest.summary import print_report
from worker.settings import WorkerSettings

__all__ = ["cache_settings", "run_demo"]


def _latest_model(settings: LoadtestSettings, verbose: bool, console: Console, log_path: Path) -> Path:
    """``<models_dir>/latest``, training the quick preset first when it does not exist yet."""
    latest = settings.models_dir / "latest"
    try:
        return resolve_checkpoint(latest)
    except CheckpointError:
        if latest.exists() or latest.is_symlink():
            raise
    console.print(f"[bold]No checkpoint at {latest}[/] — training the quick preset (a few minutes on 2 cores)…")
    from trainer.config import TrainArgs
    from trainer.train import run_training

    started = time.monotonic()
    # The trainer's progress bars and loss lines go to stdout as well as stderr.
    with nullcontext() if verbose else _output_to(log_path, 1, 2):
        # The report measures this model on the replayed test split; `triage evaluate` gives the offline figures.
        run_training(TrainArgs(preset="quick", data_dir=settings.data_dir, output=settings.models_dir, evaluate=False))
    console.print(f"trained in {time.monotonic() - started:.0f}s")
    return resolve_checkpoint(latest)


@contextmanager
def _output_to(path: Path, *fds: int) -> Iterator[None]:
    """Point file descriptors (2: stderr; 1: stdout too) at ``path`` until the block ends, so only the report reaches
    the screen. Descriptors, not ``sys.stderr``: structlog and the logging handler keep the stream they were
    configured with, and native libraries write to the descriptor directly."""
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


def cache_settings(worker: WorkerSettings, run_id: str, console: Console) -> dict[str, object]:
    """Redis when it answers PING (with the configured password), else the worker's in-process cache, said plainly;
    a per-run key prefix keeps the cache hits this run's own."""
    import redis

    memory: dict[str, object] = {"backend": "memory", "key_prefix": f"triage-demo-{run_id}"}
    if worker.redis.backend == "memory":
        console.print("Cache: in-process memory (TRIAGE_REDIS__BACKEND=memory)")
        return memory
    url = worker.redis.url
    client = redis.Redis.from_url(url, password=worker.redis.password_value(), socket_connect_timeout=1.0,
                                  socket_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        console.print(f"[yellow]Cache: Redis is not reachable at {url} ({type(exc).__name__}: {exc}); falling back to "
                      "the worker's in-process cache (private to the worker, lost when it stops). Start Redis or set "
                      "TRIAGE_REDIS__URL to use it.[/]")
        return memory
    finally:
        client.close()
    console.print(f"Cache: Redis at {url}")
    return {**memory, "backend": "redis", "url": url}


def run_demo(
    settings: LoadtestSettings, worker: WorkerSettings, replay: ReplayConfig, brokers: str | None = None,
    model_dir: Path | None = None, live: bool = True, verbose: bool = False,
) -> int:
    """Run the whole stack once and print the replay's report; every child is stopped before it returns.

    Args:
        brokers: Use this Kafka instead of starting the embedded broker.
        model_dir: Checkpoint to serve; None serves ``<models_dir>/latest``, trained first when missing.
        verbose: Leave log events, warnings and progress bars on the screen instead of in ``demo.log``.

    Returns:
        The exit status: 1 when a ticket was lost or a process of the demo is still running, else 0.
    """
    console = Console()
    run_id = new_run_id()
    out_dir = settings.results_dir / "loadtest" / f"demo-{run_id}"
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "demo.log"
    started = time.monotonic()
    with stop_signals(), ExitStack() as stack:
        if not verbose:
            console.print(f"Logs: {log_path} (--verbose shows them here)", soft_wrap=True)
            stack.enter_context(_output_to(log_path, 2))
        records = load_source("test", settings.data_dir, settings.hub_dataset)  # before a training that needs it too
        model = resolve_checkpoint(model_dir) if model_dir else _latest_model(settings, verbose, console, log_path)
        console.print(f"Model: {model}")
        if brokers:
            console.print(f"Kafka: using {brokers}")
        else:
            brokers = stack.enter_context(EmbeddedBroker(log_path=out_dir / "broker.log")).bootstrap
            console.print(f"Kafka: embedded broker on {brokers}")
        console.print(f"Worker: starting (log {out_dir / 'worker.log'})…")
        stack.callback(console.print, "Worker: stopped")
        running = stack.enter_context(running_worker({
            "brokers": brokers, "group_id": f"triage-demo-{run_id}", "topics": settings.topics.model_dump(),
            "model_dir": str(model), "redis": cache_settings(worker, run_id, console),
        }, out_dir / "worker.log"))
        serving = running.health.get("model_serving") or {}
        console.print(f"Worker: ready, model {running.health.get('model_version')} on {serving.get('backend')} "
                      f"({serving.get('reason')}; {time.monotonic() - started:.0f}s since the demo started)")
        source = settings.data_dir or settings.hub_dataset
        console.print(f"Replaying {replay.count:,} messages at ~{replay.rate:g}/s (Poisson): {source} test tickets, "
                      f"{replay.duplicate_ratio:.0%} repeats, {replay.malformed_ratio:.0%} malformed, "
                      f"{replay.offtopic_ratio:.0%} off-topic…")
        report = asyncio.run(run_loadtest(brokers, settings.topics, records, replay, metrics_url=running.metrics_url,
                                          live=live, out_root=out_dir, console=console))
    print_report(report, console)
    print(f"demo finished in {time.monotonic() - started:.0f}s; report, plots and logs in {out_dir}")
    if left := leftovers():
        print(f"processes left running: {', '.join(left)}", file=sys.stderr)
    else:
        print("every process the demo started has exited")
    return 1 if report.counts.lost or left else 0
