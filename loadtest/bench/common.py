"""What every benchmark shares: the machine description, the JSON result file and the printed table."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["REFERENCE", "BenchResult", "machine"]

REFERENCE = {
    "model_fp32_one_at_a_time_texts_per_s": 164,
    "model_fp32_batch8_texts_per_s": 258,
    "model_fp32_batch32_texts_per_s": 218,
    "noop_faust_relay_take500_tickets_per_s": 4900,
}
"""Figures quoted in issue #6, measured earlier on the same kind of 2-core machine."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Where the figures came from; the load average shows whether the CPU was shared at the time."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class BenchResult:
    """Rows measured side by side in one run, their ratios, and the machine; printed and written as JSON."""

    def __init__(self, name: str, title: str, params: dict[str, Any]) -> None:
        self.name = name
        self.title = title
        self.params = params
        self.machine = machine()
        self.rows: list[dict[str, Any]] = []
        self.ratios: dict[str, float | None] = {}
        self.notes: list[str] = []

    def add(self, **row: Any) -> dict[str, Any]:
        self.rows.append(row)
        return row

    def ratio(self, name: str, numerator: float | None, denominator: float | None) -> float | None:
        value = round(numerator / denominator, 2) if numerator and denominator else None
        self.ratios[name] = value
        return value

    def as_json(self) -> dict[str, Any]:
        return {
            "bench": self.name,
            "title": self.title,
            "machine": self.machine,
            "params": self.params,
            "rows": self.rows,
            "ratios": self.ratios,
            "notes": self.notes,
        }

    def write(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.name}.json"
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")
        return path

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        table = Table(title=self.title, title_style="bold", header_style="bold")
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        for column in columns:
            table.add_column(column, justify="left" if column in ("config", "backend") else "right")
        for row in self.rows:
            table.add_row(*(_cell(row.get(column)) for column in columns))
        console.print(table)
        for name, value in self.ratios.items():
            console.print(f"  {name}: [bold]{'-' if value is None else f'{value:g}×'}[/]")
        for note in self.notes:
            console.print(f"  [dim]{note}[/]")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
