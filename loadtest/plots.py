"""PNG plots of one run: latency and throughput over time, the latency histogram, batch sizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.ledger import Tracked
from loadtest.report import Report

__all__ = ["write_plots"]


def write_plots(report: Report, entries: Sequence[Tracked], out_dir: Path) -> list[Path]:
    """Write the four standard plots into ``out_dir`` (which exists); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    enriched = [e for e in entries if e.acked and e.enriched_at is not None]
    t0 = min((e.sent_at for e in entries if e.acked), default=0.0)
    latencies = [e.latency_ms or 0.0 for e in enriched]
    timeline = report.timeline
    written = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append(out_dir / name)

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.scatter([e.sent_at - t0 for e in enriched], latencies, s=3, alpha=0.35, label="ticket")
    for name, colour in (("p50", "tab:green"), ("p99", "tab:red")):
        points = [(p.second + 0.5, getattr(p, f"{name}_ms")) for p in timeline if getattr(p, f"{name}_ms") is not None]
        ax.plot([x for x, _ in points], [y for _, y in points], color=colour, label=f"{name} per second")
    ax.set(xlabel="send time (s)", ylabel="end-to-end latency (ms)", title=f"Latency over time — {report.run_id}")
    ax.set_yscale("log")
    ax.legend(loc="upper left")
    save(fig, "latency_over_time.png")

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.step([p.second for p in timeline], [p.sent for p in timeline], where="post", label="offered (sent/s)")
    ax.step([p.second for p in timeline], [p.completed for p in timeline], where="post", label="completed (outputs/s)")
    ax.set(xlabel="time since first send (s)", ylabel="messages per second", title="Throughput over time")
    ax.legend(loc="upper right")
    save(fig, "throughput_over_time.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(latencies, bins=60, color="tab:blue")
    for name, value, colour in (("p50", report.latency_ms.p50, "tab:green"), ("p99", report.latency_ms.p99, "tab:red")):
        if value is not None:
            ax.axvline(value, color=colour, linestyle="--", label=f"{name} {value:.0f} ms")
    ax.set(xlabel="end-to-end latency (ms)", ylabel="tickets", title="Latency histogram")
    ax.legend()
    save(fig, "latency_histogram.png")

    # Bars at positions labelled with the sizes: string x values would make matplotlib log a notice.
    batches = report.batch_sizes
    labels = list(batches.histogram)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(labels)), list(batches.histogram.values()), color="tab:purple")
    sources = {"metrics": "worker /metrics", "records": "inferred from triage records", "none": "no data"}
    ax.set(xlabel="batch size" + (" (bucket ≤)" if batches.source == "metrics" else ""), ylabel="batches",
           title=f"Model batch sizes ({sources[batches.source]})")
    step = max(len(labels) // 20, 1)
    ax.set_xticks(list(range(len(labels)))[::step], labels[::step])
    save(fig, "batch_sizes.png")
    return written
