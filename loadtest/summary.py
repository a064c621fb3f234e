"""Print a finished report as small two-column tables that fit an 80-column terminal or log."""

from __future__ import annotations

from rich.columns import Columns
from rich.console import Console, Group
from rich.table import Table

from loadtest.report import Report

__all__ = ["print_report", "report_tables"]


def _fmt(value: float | int | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def _table(title: str, rows: list[tuple[str, str]], key: str = "", value: str = "") -> Table:
    table = Table(title=title, title_style="bold", show_header=bool(key), header_style="bold")
    table.add_column(key)
    table.add_column(value, justify="right")
    for name, shown in rows:
        table.add_row(name, shown)
    return table


def report_tables(report: Report) -> Group:
    """The report as one renderable: outcomes, latency/throughput, quality/cache, per-topic counts, and the
    off-topic tickets when the run sent any."""
    c, lat, tp, acc = report.counts, report.latency_ms, report.throughput, report.accuracy
    lost = f"[bold {'green' if c.lost == 0 else 'red'}]{c.lost}[/]"
    outcomes = _table(
        "Outcome",
        [
            ("produced", _fmt(c.produced)),
            ("enriched", _fmt(c.enriched)),
            ("dead-lettered", f"{c.dead_lettered:,} ({c.dead_lettered_expected:,} malformed)"),
            ("lost", lost),
            ("duplicate deliveries", _fmt(c.duplicates)),
            ("valid tickets dead-lettered", _fmt(c.dead_lettered_unexpected)),
            ("send failures", _fmt(c.send_failed)),
        ],
    )
    speed = _table(
        "Latency and throughput",
        [
            ("p50 end to end", f"{_fmt(lat.p50)} ms"),
            ("p95", f"{_fmt(lat.p95)} ms"),
            ("p99", f"{_fmt(lat.p99)} ms"),
            ("max", f"{_fmt(lat.max)} ms"),
            ("offered", f"{_fmt(tp.offered_per_s)} /s"),
            ("completed", f"{_fmt(tp.completed_per_s)} /s"),
            ("peak second", f"{_fmt(tp.peak_per_s)} /s"),
        ],
    )
    quality = _table(
        "Accuracy and cache",
        [
            ("category accuracy", _fmt(acc.category, pct=True)),
            ("priority accuracy", _fmt(acc.priority, pct=True)),
            ("intent accuracy", _fmt(acc.intent, pct=True)),
            ("High recall", f"{_fmt(acc.high_recall, pct=True)} of {acc.high_support:,}"),
            ("cache hits", f"{report.cache.hits:,} ({_fmt(report.cache.hit_ratio, pct=True)})"),
            ("repeated texts sent", _fmt(report.cache.repeated_texts)),
            ("mean model batch", _fmt(report.batch_sizes.mean)),
        ],
    )
    topics = _table("Per topic", [(t, _fmt(n)) for t, n in report.per_topic.items()], "topic", "records")
    below = [topics]
    off = report.offtopic
    if off.sent:
        paged = f"[bold {'green' if off.paged == 0 else 'red'}]{off.paged:,}[/]"
        below.append(
            _table(
                "Off-topic tickets",
                [
                    ("sent", _fmt(off.sent)),
                    ("flagged out of scope", f"{off.out_of_scope:,} of {off.enriched:,} triaged"),
                    ("paged (on-call)", paged),
                ],
            )
        )
    return Group(
        f"[bold]Run {report.run_id}[/]",
        Columns([outcomes, speed, quality], padding=(0, 2)),
        Columns(below, padding=(0, 2)),
    )


def print_report(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    console.print(report_tables(report))
    if report.dead_letter_codes:
        codes = ", ".join(f"{code} {n}" for code, n in report.dead_letter_codes.items())
        console.print(f"dead letters by code: {codes}")
    if report.plots:
        console.print(f"report and plots: {report.plots[0].rsplit('/', 1)[0]}/")
