"""``make gpu-check``: the GPU path measured in one call, on the first machine that has one.

Trains the quick preset on CUDA (no network: the base model ships as a package, Banking77 comes from
``TRIAGE_DATA_DIR``), drains a backlog through a fresh worker on backend ``auto``, offers half that rate live for
the p99, and prints one JSON line. ``--device cpu`` (with ``--model``) rehearses the steps without a GPU.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from inference.errors import UserError

__all__ = ["gpu_check", "main"]


def gpu_check(
    device: str, model: Path | None, work: Path, count: int, duration_s: float, batch_size: int
) -> dict[str, Any]:
    """Train (unless ``model`` is given), drain, measure p99; returns the figures printed as one line."""
    import torch

    from inference.checkpoint import read_manifest
    from inference.classifier import resolve_backend
    from loadtest.bench.worker import Bench, bench_latency
    from loadtest.replay import ReplayConfig
    from loadtest.settings import LoadtestSettings
    from trainer.config import TrainArgs
    from trainer.train import run_training

    if model is None:
        settings = LoadtestSettings()
        model = run_training(TrainArgs(preset="quick", data_dir=settings.data_dir, hub_dataset=settings.hub_dataset,
                                       output=work / "models"))
    bench = Bench.load(work / "bench", model)
    manifest = read_manifest(bench.model_dir)
    metrics = json.loads((bench.model_dir / "metrics.json").read_text(encoding="utf-8"))
    with bench.started(device=device) as live:
        drained = live.drain("gpu-check", bench.test, ReplayConfig(source="test", rate=None, count=count, seed=1),
                             batch_size=batch_size, model_backend="auto")
        rate = drained.throughput.steady_per_s
        if not rate:
            raise click.ClickException(f"the drain of {count} tickets was too short to time")
        (row,) = bench_latency(live, saturation=rate, duration_s=duration_s, levels=(0.5,)).rows
    return {
        "device": device, "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "version": manifest["version"], "train_seconds": manifest["train_seconds"],
        "precision_trained": manifest["precision"],
        "test_intent_accuracy": metrics.get("test", {}).get("intent_accuracy"),
        "served": resolve_backend(bench.model_dir, "auto", device).as_dict(), "drain_tickets": count,
        "drain_tickets_per_s": rate, "p99_ms_at_50pct": row["p99_ms"], "p50_ms_at_50pct": row["p50_ms"],
        "offered_per_s": row["offered_per_s"], "served_intent_accuracy": drained.accuracy.intent,
        "served_high_recall": drained.accuracy.high_recall,
    }


@click.command(context_settings={"show_default": True})
@click.option("--device", default="cuda", help="Torch device; cpu rehearses without a GPU.")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Skip training: use this checkpoint.")
@click.option("--work", type=click.Path(path_type=Path), default=None, help="Scratch folder [a temp folder].")
@click.option("--count", type=click.IntRange(min=100), default=5000, help="Backlog tickets.")
@click.option("--duration", type=click.FloatRange(min=5), default=20.0,
              help="Seconds of live traffic at 50% of the drain rate, for the p99.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256,
              help="Worker micro-batch (a GPU wants bigger batches than the CPU default).")
def main(device: str, model: Path | None, work: Path | None, count: int, duration: float, batch_size: int) -> None:
    """Train on CUDA, drain through the worker on the GPU, print one JSON line."""
    import torch

    from inference.logging import configure_logging

    configure_logging("WARNING")
    if device.startswith("cuda") and not torch.cuda.is_available():
        click.echo(f"gpu-check needs a CUDA device and found none (torch {torch.__version__}, CUDA build "
                   f"{torch.version.cuda or 'none (CPU wheel)'}). Run it on a machine with an NVIDIA GPU and a CUDA "
                   "build of torch (the locked install is the CPU wheel: install torch from "
                   "https://download.pytorch.org/whl/cu128 into .venv there), or pass --device cpu to rehearse the "
                   "steps.", err=True)
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        try:
            figures = gpu_check(device, model, work or Path(scratch), count, duration, batch_size)
        except UserError as exc:  # no data or checkpoint: the message says what to do
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(figures))


if __name__ == "__main__":
    main()
