"""PNG plots of one run: latency and throughput over time, the latency histogram, batch sizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadtest.ledger import Tracked
from loadtest.report import Report

__all__ = ["write_plots"]


def write_plots(report: Report, entries: Sequence[Tracked], out_dir: Path) -> list[Path]:
    """Write the four standard plots into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    enriched = [e for e in entries if e.acked and e.enriched_at is not None]
    t0 = min((e.sent_at for e in entries if e.acked), default=0.0)
    xs = [e.sent_at - t0 for e in enriched]
    ys = [e.latency_ms or 0.0 for e in enriched]
    seconds = [p.second for p in report.timeline]
    written = []

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.scatter(xs, ys, s=3, alpha=0.35, label="ticket")
    ax.plot(
        [p.second + 0.5 for p in report.timeline if p.p50_ms is not None],
        [p.p50_ms for p in report.timeline if p.p50_ms is not None],
        color="tab:green",
        label="p50 per second",
    )
    ax.plot(
        [p.second + 0.5 for p in report.timeline if p.p99_ms is not None],
        [p.p99_ms for p in report.timeline if p.p99_ms is not None],
        color="tab:red",
        label="p99 per second",
    )
    ax.set(
        xlabel="send time (s)", ylabel="end-to-end latency (ms)", title=f"Latency over time — {report.run_id}"
    )
    ax.set_yscale("log")
    ax.legend(loc="upper left")
    written.append(_save(fig, out_dir / "latency_over_time.png"))

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.step(seconds, [p.sent for p in report.timeline], where="post", label="offered (sent/s)")
    ax.step(seconds, [p.completed for p in report.timeline], where="post", label="completed (outputs/s)")
    ax.set(xlabel="time since first send (s)", ylabel="messages per second", title="Throughput over time")
    ax.legend(loc="upper right")
    written.append(_save(fig, out_dir / "throughput_over_time.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(ys, bins=60, color="tab:blue")
    for name, value, colour in (
        ("p50", report.latency_ms.p50, "tab:green"),
        ("p99", report.latency_ms.p99, "tab:red"),
    ):
        if value is not None:
            ax.axvline(value, color=colour, linestyle="--", label=f"{name} {value:.0f} ms")
    ax.set(xlabel="end-to-end latency (ms)", ylabel="tickets", title="Latency histogram")
    ax.legend()
    written.append(_save(fig, out_dir / "latency_histogram.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    # Bars at positions labelled with the sizes: string x values would make matplotlib log a notice.
    labels = list(report.batch_sizes.histogram)
    positions = list(range(len(labels)))
    ax.bar(positions, list(report.batch_sizes.histogram.values()), color="tab:purple")
    source = {"metrics": "worker /metrics", "records": "inferred from triage records", "none": "no data"}
    ax.set(
        xlabel="batch size" + (" (bucket ≤)" if report.batch_sizes.source == "metrics" else ""),
        ylabel="batches",
        title=f"Model batch sizes ({source[report.batch_sizes.source]})",
    )
    step = max(len(labels) // 20, 1)
    ax.set_xticks(positions[::step], labels[::step])
    written.append(_save(fig, out_dir / "batch_sizes.png"))
    return written


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=110)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
