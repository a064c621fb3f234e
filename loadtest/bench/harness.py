"""A broker plus one worker process per configuration, each with its own topics, group, cache keys, port.

Two ways to measure a worker: ``replay`` sends tickets to a running worker while collecting its outputs
(latency under offered load; producer and collector share the cores), and ``drain`` preloads a backlog,
then starts a fresh worker and lets it empty the topic alone (the worker's own throughput).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from loadtest.collector import Collector
from loadtest.ledger import Ledger
from loadtest.metrics import counter_total, scrape_batch_histogram, scrape_text
from loadtest.processes import ChildProcess, stop_signals
from loadtest.replay import ReplayConfig, Replayer, new_run_id
from loadtest.report import Report, build_report
from loadtest.run import RunOptions, run_loadtest
from loadtest.settings import parse_brokers
from loadtest.source import SourceRecord
from loadtest.stack import start_worker, wait_ready
from triage.broker import EmbeddedBroker, create_topics, free_port
from worker.settings import TopicSettings

__all__ = ["BenchStack", "Drained", "RelayDrained", "RunningWorker", "steady_rate"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunningWorker:
    label: str
    topics: TopicSettings
    metrics_url: str


@dataclass(frozen=True)
class Drained:
    """A backlog drain: the collector's report (outputs timed by their Kafka timestamps) and the rate."""

    report: Report
    tickets_per_s: float | None


@dataclass(frozen=True)
class RelayDrained:
    """A peer's drain of the same kind of backlog (bare Faust relay, naive consumer): records out, and the rate."""

    produced: int
    forwarded: int
    tickets_per_s: float | None


def steady_rate(times: Sequence[float], trim: float = 0.05) -> float | None:
    """Outputs per second between the ``trim`` and ``1 - trim`` quantiles of their times.

    Cutting both ends leaves out the worker's start (group join, first cold forward passes) and the tail
    of the last partial batches, so the figure is the rate the worker sustains.
    """
    ordered = sorted(times)
    low = int(len(ordered) * trim)
    high = len(ordered) - 1 - low
    if high - low < 1 or ordered[high] <= ordered[low]:
        return None
    return round((high - low) / (ordered[high] - ordered[low]), 1)


class BenchStack:
    """Starts the embedded broker (unless ``brokers`` is given) and, on request, workers to measure.

    Every worker first gets a short warm-up replay (partition assignment, first forward passes) from
    ``warmup`` records, which should not overlap the measured texts so they cannot become cache hits.
    """

    def __init__(
        self,
        out_dir: Path,
        model_dir: Path,
        redis_url: str,
        warmup: list[SourceRecord],
        brokers: str | None = None,
        warmup_count: int = 100,
    ) -> None:
        self.out_dir = out_dir
        self.model_dir = model_dir
        self.redis_url = redis_url
        self.warmup = warmup
        self.warmup_count = warmup_count
        self._brokers = brokers
        self._stack = ExitStack()

    @property
    def brokers(self) -> str:
        assert self._brokers is not None, "use BenchStack as a context manager"
        return self._brokers

    def __enter__(self) -> BenchStack:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._stack.enter_context(stop_signals())
        if self._brokers is None:
            broker = self._stack.enter_context(EmbeddedBroker(log_path=self.out_dir / "broker.log"))
            self._brokers = broker.bootstrap
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _start(
        self, label: str, cache: bool, overrides: dict[str, Any], prefix: str | None = None
    ) -> tuple[ChildProcess, RunningWorker, str]:
        """A fresh worker on its own topics, group and cache keys, ready (model loaded, Kafka reachable)."""
        prefix = prefix or f"bench-{label}-{secrets.token_hex(3)}"
        topics = TopicSettings.namespaced(prefix)
        port = free_port()
        state_dir = tempfile.mkdtemp(prefix=f"triage-{prefix}-")
        settings: dict[str, Any] = {
            "brokers": self.brokers,
            "group_id": prefix,
            "topics": topics.model_dump(),
            "model_dir": str(self.model_dir),
            "web_host": "127.0.0.1",
            "web_port": port,
            "state_dir": state_dir,
            "reload_interval_s": 0,
            "redis": {"enabled": cache, "url": self.redis_url, "key_prefix": prefix},
            **overrides,
        }
        child = start_worker(settings, self.out_dir / f"worker-{label}.log")
        try:
            wait_ready(child, port)
        except BaseException:
            child.stop()
            shutil.rmtree(state_dir, ignore_errors=True)
            raise
        return child, RunningWorker(label, topics, f"http://127.0.0.1:{port}/metrics"), state_dir

    @contextmanager
    def worker(self, label: str, cache: bool, **overrides: Any) -> Iterator[RunningWorker]:
        """A fresh, warmed-up worker; ``overrides`` are WorkerSettings fields (``batch_size=1``, ...)."""
        child, running, state_dir = self._start(label, cache, overrides)
        try:
            warm = self.replay(
                running,
                self.warmup,
                ReplayConfig(source="warm-up", rate=None, count=self.warmup_count, seed=99),
            )
            if warm.counts.lost:
                raise RuntimeError(
                    f"worker {label} lost {warm.counts.lost} warm-up tickets; see {child.log_path}"
                )
            log.info(
                "bench_worker_ready", label=label, **{k: v for k, v in overrides.items() if k != "redis"}
            )
            yield running
        finally:
            child.stop()
            shutil.rmtree(state_dir, ignore_errors=True)

    def drain(
        self,
        label: str,
        records: list[SourceRecord],
        config: ReplayConfig,
        cache: bool,
        timeout_s: float = 600.0,
        **overrides: Any,
    ) -> Drained:
        """Preload ``config``'s tickets, start a fresh worker, and time how fast it empties the backlog.

        Nothing else runs while the worker drains (the collector reads the outputs afterwards, timing them
        by their Kafka timestamps), so the rate is the worker's own on cores it shares only with the broker.
        """
        prefix = f"bench-{label}-{secrets.token_hex(3)}"
        return asyncio.run(self._drain(label, prefix, records, config, cache, timeout_s, overrides))

    def _preload(self, topic: str, records: list[SourceRecord], config: ReplayConfig, ledger: Ledger) -> int:
        """Produce the whole backlog (before anything consumes it); returns how many the broker acknowledged."""
        Replayer(parse_brokers(self.brokers), topic, records, config, ledger, new_run_id()).run(threading.Event())
        return sum(1 for entry in ledger.entries if entry.acked)

    async def _drain(
        self,
        label: str,
        prefix: str,
        records: list[SourceRecord],
        config: ReplayConfig,
        cache: bool,
        timeout_s: float,
        overrides: dict[str, Any],
    ) -> Drained:
        hosts = parse_brokers(self.brokers)
        topics = TopicSettings.namespaced(prefix)
        await asyncio.to_thread(create_topics, self.brokers, {topics.incoming: topics.partitions})
        ledger = Ledger()
        collector = Collector(hosts, topics, ledger, clock="record")
        await collector.start()
        try:
            expected = await asyncio.to_thread(self._preload, topics.incoming, records, config, ledger)
            log.info("bench_backlog_loaded", label=label, tickets=expected)
            child, running, state_dir = await asyncio.to_thread(self._start, label, cache, overrides, prefix)
            try:
                await asyncio.to_thread(self._wait_drained, child, running, expected, timeout_s)
                batches = await asyncio.to_thread(scrape_batch_histogram, running.metrics_url)
                deadline = time.monotonic() + 60
                while ledger.pending and time.monotonic() < deadline:
                    await collector.poll(timeout_ms=200)
            finally:
                await asyncio.to_thread(child.stop)
                shutil.rmtree(state_dir, ignore_errors=True)
        finally:
            await collector.stop()
        run_id = new_run_id()
        report = build_report(
            run_id, config, hosts, topics, ledger, collector, batches.as_batch_sizes() if batches else None
        )
        report.write(self.out_dir / "runs" / run_id / "report.json")
        return Drained(report, steady_rate([e.seen_at for e in ledger.entries if e.seen_at is not None]))

    def drain_relay(
        self, records: list[SourceRecord], config: ReplayConfig, timeout_s: float = 300.0
    ) -> RelayDrained:
        """The same backlog drain through ``loadtest.bench.relay`` (plain Faust, ``take(500)``, no pipeline)."""
        return self._drain_peer("relay", "loadtest.bench.relay", [], records, config, timeout_s)

    def drain_naive(
        self, records: list[SourceRecord], config: ReplayConfig, timeout_s: float = 600.0
    ) -> RelayDrained:
        """The same backlog drain through ``loadtest.bench.naive`` (aiokafka, one ticket at a time, torch fp32)."""
        return self._drain_peer("naive", "loadtest.bench.naive", [str(self.model_dir)], records, config, timeout_s)

    def _drain_peer(
        self, name: str, module: str, extra: list[str], records: list[SourceRecord], config: ReplayConfig,
        timeout_s: float,
    ) -> RelayDrained:
        """Preload a backlog, run ``python -m module BROKERS IN OUT EXPECTED DONE *extra`` until DONE exists."""
        prefix = f"bench-{name}-{secrets.token_hex(3)}"
        topics = TopicSettings.namespaced(prefix)
        partitions = topics.partitions
        create_topics(self.brokers, {topics.incoming: partitions, topics.enriched: partitions})
        expected = self._preload(topics.incoming, records, config, Ledger())
        done = self.out_dir / f"{prefix}.done"
        child = ChildProcess(
            name,
            [sys.executable, "-m", module, self.brokers, topics.incoming, topics.enriched, str(expected), str(done),
             *extra],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            self.out_dir / f"{name}.log",
        ).start()
        try:
            deadline = time.monotonic() + timeout_s
            while not done.exists():
                if not child.running or time.monotonic() > deadline:
                    raise RuntimeError(f"{module} did not forward {expected} records; see {child.log_path}")
                time.sleep(0.2)
        finally:
            child.stop()
            done.unlink(missing_ok=True)
            shutil.rmtree(done.with_name(done.name + ".state"), ignore_errors=True)
        stamps = asyncio.run(_timestamps(self.brokers, topics.enriched, partitions, expected))
        return RelayDrained(expected, len(stamps), steady_rate(stamps))

    @staticmethod
    def _wait_drained(child: ChildProcess, worker: RunningWorker, expected: int, timeout_s: float) -> None:
        """Until the worker has published an outcome for ``expected`` tickets (its own counters say so)."""
        outcomes = {worker.topics.enriched, worker.topics.deadletter}
        deadline = time.monotonic() + timeout_s
        done = 0.0
        while time.monotonic() < deadline:
            if not child.running:
                raise RuntimeError(f"worker {worker.label} exited while draining; see {child.log_path}")
            text = scrape_text(worker.metrics_url)
            done = counter_total(text, "triage_records_out", "topic", outcomes) if text else done
            if done >= expected:
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"worker {worker.label} published {done:.0f} of {expected} tickets in {timeout_s:.0f}s; "
            f"see {child.log_path}"
        )

    def replay(
        self,
        worker: RunningWorker,
        records: list[SourceRecord],
        config: ReplayConfig,
        drain_timeout_s: float = 60.0,
    ) -> Report:
        """One measured replay against ``worker``; its report goes under ``<out_dir>/runs/``."""
        options = RunOptions(
            drain_timeout_s=drain_timeout_s,
            metrics_url=worker.metrics_url,
            live=False,
            plots=False,
            out_root=self.out_dir / "runs",
        )
        return asyncio.run(run_loadtest(self.brokers, worker.topics, records, config, options))


async def _timestamps(brokers: str, topic: str, partitions: int, expected: int, timeout_s: float = 60.0) -> list[float]:
    """Kafka timestamps (seconds) of the first ``expected`` distinct keys on ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=parse_brokers(brokers), enable_auto_commit=False)
    await consumer.start()
    stamps: dict[bytes | None, float] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while len(stamps) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for record in batch:
                    stamps.setdefault(record.key, record.timestamp / 1000.0)
    finally:
        await consumer.stop()
    return list(stamps.values())
