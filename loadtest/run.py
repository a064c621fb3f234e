"""One load-test run: position the collector, replay, drain the outputs, write the report and plots."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadtest.collector import Collector
from loadtest.ledger import Ledger
from loadtest.metrics import BatchHistogram, scrape
from loadtest.plots import write_plots
from loadtest.replay import ReplayConfig, Replayer, new_run_id
from loadtest.report import BatchSizes, Report, build_report
from loadtest.settings import parse_brokers
from loadtest.source import SourceRecord
from schemas.topics import TopicSettings

__all__ = ["Consume", "run_loadtest"]

log = structlog.get_logger(__name__)

Consume = Callable[[int], BatchSizes | None]
"""A backlog drain's consumer: told how many tickets wait on the input topic, it runs until they are all
published and returns the model batch sizes it saw (None: inferred from the records)."""


async def run_loadtest(
    brokers: str, topics: TopicSettings, records: list[SourceRecord], config: ReplayConfig, *,
    drain_timeout_s: float = 30.0, metrics_url: str | None = None, live: bool = True, plots: bool = True,
    out_root: Path | None = None, console: Console | None = None, consume: Consume | None = None,
) -> Report:
    """Replay ``records`` onto ``topics.incoming`` and collect every output until all are accounted for.

    Args:
        drain_timeout_s: After the last send, stop waiting once no output arrived for this long.
        metrics_url: The worker's Prometheus endpoint; its batch-size histogram is diffed over the run.
        live: Show progress: a bar on a terminal (``console``, default stderr), else a log line every 5 s.
        out_root: Reports go to ``<out_root>/<run_id>/``; None writes nothing.
        consume: Makes the run a backlog drain: everything is sent first, then ``consume`` runs (in a thread)
            alone, and the outputs are read afterwards, timed by their Kafka timestamps.
    """
    hosts = parse_brokers(brokers)
    run_id = new_run_id()
    ledger = Ledger()
    collector = Collector(hosts, topics, ledger, clock="received" if consume is None else "record")
    before = BatchHistogram.parse(await asyncio.to_thread(scrape, metrics_url))
    await collector.start()
    replayer = Replayer(hosts, topics.incoming, records, config, ledger, run_id)
    stop = threading.Event()
    sender = threading.Thread(target=replayer.run, args=(stop,), name="replay-producer", daemon=True)
    log.info("loadtest_started", run=run_id, brokers=",".join(hosts), incoming=topics.incoming,
             rate=config.rate or "max", count=config.count, duration=config.duration)
    batches: BatchSizes | None = None
    try:
        with _progress(console or Console(stderr=True), live, ledger, replayer.limit) as show:
            sender.start()
            if consume is not None:
                await asyncio.to_thread(sender.join)
                batches = await asyncio.to_thread(consume, ledger.produced - ledger.failed)
            await _drain(collector, replayer, ledger, drain_timeout_s, show)
    finally:
        gc.unfreeze()
        stop.set()
        if sender.is_alive():
            await asyncio.to_thread(sender.join)
        await collector.stop()
    after = BatchHistogram.parse(await asyncio.to_thread(scrape, metrics_url))
    batches = after.minus(before).as_batch_sizes() if after else batches
    report = build_report(run_id, config, hosts, topics, ledger, collector, batches)
    if out_root is not None:
        out_dir = out_root / run_id
        out_dir.mkdir(parents=True, exist_ok=True)
        if plots:
            report.plots = [str(p) for p in write_plots(report, ledger.entries, out_dir)]
        (out_dir / "report.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    log.info("loadtest_finished", run=run_id, produced=report.counts.produced, enriched=report.counts.enriched,
             dead_lettered=report.counts.dead_lettered, lost=report.counts.lost, p99_ms=report.latency_ms.p99)
    return report


@contextmanager
def _progress(console: Console, live: bool, ledger: Ledger, total: int | None) -> Iterator[Callable[[], None]]:
    """How far the run is: a rich progress bar on a terminal, a log line every 5 s elsewhere."""
    interactive = live and console.is_terminal
    columns = (TextColumn("outputs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[pending]} pending"))
    logged_at = time.monotonic()
    with Progress(*columns, TimeElapsedColumn(), console=console, disable=not interactive) as bar:
        task = bar.add_task("outputs", total=total, pending=0)

        def show() -> None:
            nonlocal logged_at
            bar.update(task, completed=ledger.resolved, pending=ledger.pending)
            if live and not interactive and time.monotonic() - logged_at >= 5.0:
                logged_at = time.monotonic()
                log.info("loadtest_progress", produced=ledger.produced, resolved=ledger.resolved,
                         pending=ledger.pending)

        yield show


async def _drain(collector: Collector, replayer: Replayer, ledger: Ledger, timeout_s: float,
                 show: Callable[[], None]) -> None:
    """Read outputs until every message is accounted for (then one more second, for fan-out copies still on their
    way), or none came for ``timeout_s``.

    Meanwhile what the heap holds is frozen out of the garbage collector's full passes: one over the replay source
    and the growing ledger took 92 ms mid-run on 2 cores and showed up as a tail on the worker's latency.
    """
    last_output = time.monotonic()
    done_at: float | None = None
    settled_at: float | None = None
    while True:
        if await collector.poll(timeout_ms=100):
            last_output = time.monotonic()
        gc.freeze()
        show()
        if not replayer.done.is_set():
            continue
        now = time.monotonic()
        done_at = done_at or now
        if ledger.pending == 0:
            settled_at = settled_at or now
            if now - settled_at >= 1.0:
                return
        elif now - max(last_output, done_at) >= timeout_s:
            log.warning("loadtest_drain_timeout", pending=ledger.pending, waited_s=timeout_s)
            return
