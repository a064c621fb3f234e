"""A benchmark's result: rows measured side by side in one run, their ratios and the machine; printed and saved."""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.summary import fmt

__all__ = ["BenchResult", "machine"]


def machine() -> dict[str, Any]:
    """Where the figures came from; the load average shows whether the CPU was shared at the time."""
    cpuinfo = Path("/proc/cpuinfo")
    models = re.findall(r"^model name\s*: (.*)$", cpuinfo.read_text(), re.M) if cpuinfo.is_file() else []
    return {
        "cpu": models[0] if models else platform.processor() or "unknown",
        "cores": len(os.sched_getaffinity(0)),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class BenchResult:
    name: str
    title: str
    params: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=machine)
    rows: list[dict[str, Any]] = field(default_factory=list)
    ratios: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ratio(self, name: str, numerator: float | None, denominator: float | None) -> float | None:
        """Record ``numerator / denominator`` under ``name`` (None when either is missing); returns it."""
        self.ratios[name] = round(numerator / denominator, 2) if numerator and denominator else None
        return self.ratios[name]

    def write(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.name}.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        table = Table(title=self.title, title_style="bold", header_style="bold")
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        for column in columns:
            table.add_column(column, justify="left" if column in ("config", "backend", "mode") else "right")
        for row in self.rows:
            table.add_row(*(fmt(row.get(column)) for column in columns))
        console.print(table)
        for name, value in self.ratios.items():
            console.print(f"  {name}: [bold]{'-' if value is None else f'{value:g}×'}[/]")
        for note in self.notes:
            console.print(f"  [dim]{note}[/]")
