"""One load-test run: position the collector, replay, drain the outputs, write the report and plots."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from rich.console import Console

from loadtest.collector import Collector
from loadtest.ledger import Ledger
from loadtest.live import LiveView
from loadtest.metrics import BatchHistogram, scrape_batch_histogram
from loadtest.replay import ReplayConfig, Replayer, new_run_id
from loadtest.report import Report, build_report
from loadtest.settings import parse_brokers
from loadtest.source import SourceRecord
from worker.settings import TopicSettings

__all__ = ["RunOptions", "run_loadtest"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How a run ends and what it writes.

    Attributes:
        drain_timeout_s: After the last send, stop waiting once no output arrived for this long.
        grace_s: After every message is accounted for, keep reading this long to catch fan-out copies.
        metrics_url: The worker's Prometheus endpoint; its batch-size histogram is diffed over the run.
        live: Show the live display.
        plots: Write the PNG plots.
        out_root: Reports go to ``<out_root>/<run_id>/``; None writes nothing.
        console: Where the live display draws (default: stderr).
    """

    drain_timeout_s: float = 30.0
    grace_s: float = 1.0
    metrics_url: str | None = None
    live: bool = True
    plots: bool = True
    out_root: Path | None = None
    console: Console | None = None


async def run_loadtest(
    brokers: str,
    topics: TopicSettings,
    records: list[SourceRecord],
    config: ReplayConfig,
    options: RunOptions,
) -> Report:
    """Replay ``records`` onto ``topics.incoming`` and collect every output until all are accounted for.

    Args:
        brokers: Bootstrap servers (``host:port`` list, ``kafka://`` accepted).
        topics: Input and output topic names.
        records: The replay source.
        config: Rate, count, arrival process, ratios, seed.
        options: Draining, metrics, display and output.

    Returns:
        The report (also written to ``<out_root>/<run_id>/report.json`` with plots when ``out_root`` is set).
    """
    hosts = parse_brokers(brokers)
    run_id = new_run_id()
    ledger = Ledger()
    collector = Collector(hosts, topics, ledger)
    before = (
        await asyncio.to_thread(scrape_batch_histogram, options.metrics_url) if options.metrics_url else None
    )
    await collector.start()
    replayer = Replayer(hosts, topics.incoming, records, config, ledger, run_id)
    stop = threading.Event()
    sender = threading.Thread(target=replayer.run, args=(stop,), name="replay-producer", daemon=True)
    log.info(
        "loadtest_started",
        run=run_id,
        brokers=",".join(hosts),
        incoming=topics.incoming,
        rate=config.rate or "max",
        count=config.count,
        duration=config.duration,
    )
    try:
        with _short_gc_passes() as settle, LiveView(ledger, collector, options.console, enabled=options.live) as view:
            sender.start()
            await _drain(collector, replayer, ledger, options, view, settle)
    finally:
        stop.set()
        if sender.is_alive():
            await asyncio.to_thread(sender.join)
        await collector.stop()
    after = (
        await asyncio.to_thread(scrape_batch_histogram, options.metrics_url) if options.metrics_url else None
    )
    worker_batches = after.minus(before).as_batch_sizes() if isinstance(after, BatchHistogram) else None
    report = build_report(run_id, config, hosts, topics, ledger, collector, worker_batches)
    if options.out_root is not None:
        out_dir = options.out_root / run_id
        if options.plots:
            from loadtest.plots import write_plots

            report.plots = [str(p) for p in write_plots(report, ledger.entries, out_dir)]
        report.write(out_dir / "report.json")
    log.info(
        "loadtest_finished",
        run=run_id,
        produced=report.counts.produced,
        enriched=report.counts.enriched,
        dead_lettered=report.counts.dead_lettered,
        lost=report.counts.lost,
        p99_ms=report.latency_ms.p99,
    )
    return report


@contextmanager
def _short_gc_passes(every_s: float = 1.0) -> Iterator[Callable[[], None]]:
    """Keep the garbage collector's full passes short while the load generator measures.

    A full pass walks every tracked object: the replay source and the growing ledger. On 2 cores one took
    92 ms in the middle of a run, stalling the producer and the collector together, and showed up as a
    tail on the worker's latency. Objects that exist at the start, then every second those that survived,
    are frozen (never walked again); they are unfrozen, and collected if garbage, when the run ends.
    """
    gc.freeze()
    frozen_at = time.monotonic()

    def settle() -> None:
        nonlocal frozen_at
        if time.monotonic() - frozen_at >= every_s:
            gc.freeze()
            frozen_at = time.monotonic()

    try:
        yield settle
    finally:
        gc.unfreeze()


async def _drain(
    collector: Collector,
    replayer: Replayer,
    ledger: Ledger,
    options: RunOptions,
    view: LiveView,
    settle: Callable[[], None],
) -> None:
    last_output = time.monotonic()
    done_at: float | None = None
    settled_at: float | None = None
    while True:
        if await collector.poll(timeout_ms=100):
            last_output = time.monotonic()
        view.refresh()
        settle()
        if not replayer.done.is_set():
            continue
        now = time.monotonic()
        done_at = done_at or now
        if ledger.pending == 0:
            settled_at = settled_at or now
            if now - settled_at >= options.grace_s:
                return
        elif now - max(last_output, done_at) >= options.drain_timeout_s:
            log.warning("loadtest_drain_timeout", pending=ledger.pending, waited_s=options.drain_timeout_s)
            return
