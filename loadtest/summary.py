"""How a run is shown: a finished report as small two-column tables that fit an 80-column terminal or log."""

from __future__ import annotations

from rich.columns import Columns
from rich.console import Console
from rich.table import Table

from loadtest.report import Report

__all__ = ["fmt", "print_report"]


def fmt(value: object, pct: bool = False) -> str:
    """The one number format of the load tools (benchmark tables too): "-" for no value, a share as a percentage,
    thousands separators, one decimal, four below 1."""
    if value is None:
        return "-"
    if pct and isinstance(value, float):
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1 or value == 0 else f"{value:.4f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _table(title: str, rows: list[tuple[str, str]], key: str = "", value: str = "") -> Table:
    table = Table(title=title, title_style="bold", show_header=bool(key), header_style="bold")
    table.add_column(key)
    table.add_column(value, justify="right")
    for name, shown in rows:
        table.add_row(name, shown)
    return table


def print_report(report: Report, console: Console | None = None) -> None:
    c, lat, tp, acc, cache = report.counts, report.latency_ms, report.throughput, report.accuracy, report.cache
    outcomes = _table("Outcome", [
        ("produced", fmt(c.produced)), ("enriched", fmt(c.enriched)),
        ("dead-lettered", f"{c.dead_lettered:,} ({c.dead_lettered_expected:,} malformed)"),
        ("lost", f"[bold {'green' if c.lost == 0 else 'red'}]{c.lost}[/]"), ("duplicate deliveries", fmt(c.duplicates)),
        ("valid tickets dead-lettered", fmt(c.dead_lettered_unexpected)), ("send failures", fmt(c.send_failed)),
    ])
    speed = _table("Latency and throughput", [
        ("p50 end to end", f"{fmt(lat.p50)} ms"), ("p95", f"{fmt(lat.p95)} ms"), ("p99", f"{fmt(lat.p99)} ms"),
        ("max", f"{fmt(lat.max)} ms"), ("offered", f"{fmt(tp.offered_per_s)} /s"),
        ("completed", f"{fmt(tp.completed_per_s)} /s"), ("peak second", f"{fmt(tp.peak_per_s)} /s"),
        ("steady (5th-95th pct)", f"{fmt(tp.steady_per_s)} /s"),
    ])
    quality = _table("Accuracy and cache", [
        ("category accuracy", fmt(acc.category, pct=True)), ("priority accuracy", fmt(acc.priority, pct=True)),
        ("intent accuracy", fmt(acc.intent, pct=True)),
        ("High recall", f"{fmt(acc.high_recall, pct=True)} of {acc.high_support:,}"),
        ("cache hits", f"{cache.hits:,} ({fmt(cache.hit_ratio, pct=True)})"),
        ("repeated texts sent", fmt(cache.repeated_texts)), ("mean model batch", fmt(report.batch_sizes.mean)),
    ])
    below = [_table("Per topic", [(t, fmt(n)) for t, n in report.per_topic.items()], "topic", "records")]
    off = report.offtopic
    if off.sent:
        below.append(_table("Off-topic tickets", [
            ("sent", fmt(off.sent)), ("flagged out of scope", f"{off.out_of_scope:,} of {off.enriched:,} triaged"),
            ("paged (on-call)", f"[bold {'green' if off.paged == 0 else 'red'}]{off.paged:,}[/]"),
        ]))
    console = console or Console()
    console.print(f"[bold]Run {report.run_id}[/]", Columns([outcomes, speed, quality], padding=(0, 2)),
                  Columns(below, padding=(0, 2)), sep="\n")
    if report.dead_letter_codes:
        codes = ", ".join(f"{code} {n}" for code, n in report.dead_letter_codes.items())
        console.print(f"dead letters by code: {codes}")
    if report.plots:
        console.print(f"report and plots: {report.plots[0].rsplit('/', 1)[0]}/")
