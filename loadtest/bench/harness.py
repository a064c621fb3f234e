"""A broker plus one worker process per configuration, each with its own topics, group, cache keys, port."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from loadtest.processes import stop_signals
from loadtest.replay import ReplayConfig
from loadtest.report import Report
from loadtest.run import RunOptions, run_loadtest
from loadtest.source import SourceRecord
from loadtest.stack import start_worker, wait_ready
from triage.broker import EmbeddedBroker, free_port
from worker.settings import TopicSettings

__all__ = ["BenchStack", "RunningWorker"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunningWorker:
    label: str
    topics: TopicSettings
    metrics_url: str


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

    @contextmanager
    def worker(self, label: str, cache: bool, **overrides: Any) -> Iterator[RunningWorker]:
        """A fresh, warmed-up worker; ``overrides`` are WorkerSettings fields (``batch_size=1``, ...)."""
        prefix = f"bench-{label}-{secrets.token_hex(3)}"
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
            running = RunningWorker(label, topics, f"http://127.0.0.1:{port}/metrics")
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
