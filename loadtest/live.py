"""The live progress display of a run: a rich panel on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType

import structlog
from rich.console import Console
from rich.live import Live
from rich.table import Table

from loadtest.collector import Collector
from loadtest.ledger import Ledger
from loadtest.report import latency_stats

__all__ = ["LiveView"]

log = structlog.get_logger(__name__)

_WINDOW = 500


class LiveView:
    """Shows produced / enriched / dead-lettered / pending, recent latency and rates while a run goes."""

    def __init__(
        self,
        ledger: Ledger,
        collector: Collector,
        console: Console | None = None,
        enabled: bool = True,
        log_every_s: float = 5.0,
    ) -> None:
        self.ledger = ledger
        self.collector = collector
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.log_every_s = log_every_s
        self._live: Live | None = None
        self._started = time.monotonic()
        self._last_log = self._started

    def __enter__(self) -> LiveView:
        self._started = time.monotonic()
        if self.enabled and self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def _snapshot(self) -> dict[str, float | int | None]:
        entries = self.ledger.entries
        enriched = sum(1 for e in entries if e.enriched_at is not None)
        dead = sum(1 for e in entries if e.deadlettered_at is not None and e.enriched_at is None)
        recent = [e.latency_ms for e in entries[-_WINDOW * 4 :] if e.enriched_at is not None][-_WINDOW:]
        stats = latency_stats([v for v in recent if v is not None])
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return {
            "produced": len(entries),
            "enriched": enriched,
            "dead_lettered": dead,
            "pending": len(entries) - enriched - dead,
            "p50_ms": stats.p50,
            "p99_ms": stats.p99,
            "rate": round((enriched + dead) / elapsed, 1),
            "elapsed_s": round(elapsed, 1),
        }

    def _render(self) -> Table:
        snap = self._snapshot()
        table = Table(title="triage load test (live)", show_header=True, header_style="bold")
        for column in (
            "elapsed s",
            "produced",
            "enriched",
            "dead-lettered",
            "pending",
            "p50 ms",
            "p99 ms",
            "outputs/s",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            *(
                str(snap[k]) if snap[k] is not None else "-"
                for k in (
                    "elapsed_s",
                    "produced",
                    "enriched",
                    "dead_lettered",
                    "pending",
                    "p50_ms",
                    "p99_ms",
                    "rate",
                )
            )
        )
        return table

    def refresh(self) -> None:
        """Redraw (terminal) or log a progress line every ``log_every_s`` (pipes, CI)."""
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._render())
            return
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            log.info("loadtest_progress", **self._snapshot())
