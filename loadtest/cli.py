"""Click commands this package adds to ``triage``: replay (with its collector), demo and bench."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from loadtest.bench.commands import bench_group

if TYPE_CHECKING:
    from loadtest.replay import ReplayConfig

__all__ = ["COMMANDS"]

_LIVE = click.option("--live/--no-live", default=True, help="Show progress while it runs.")
_SHOW_DEFAULTS = {"show_default": True}


def _replay_config(**fields: Any) -> ReplayConfig:
    """``ReplayConfig(**fields)``: it checks every range, and its errors are shown as usage errors."""
    from pydantic import ValidationError

    from loadtest.replay import ReplayConfig

    try:
        return ReplayConfig(**fields)
    except ValidationError as exc:
        errors = [(f"--{str(e['loc'][0]).replace('_', '-')}: " if e["loc"] else "") + e["msg"] for e in exc.errors()]
        raise click.UsageError("; ".join(errors)) from exc


_DATA = click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
                     help="Data folder whose test split is replayed (docs/own-tickets.md) [TRIAGE_DATA_DIR, else "
                     "Banking77 from the hub].")


@click.command("replay", context_settings=_SHOW_DEFAULTS)
@click.option("--source", default="test",
              help="Split of the data folder (train|test) or a Ticket JSONL file (ground truth in metadata.intent).")
@_DATA
@click.option("--rate", default="100", help="Mean tickets/s, or 'max'.")
@click.option("--count", type=int,
              help="Messages to send (default: one pass over the source unless --duration is given).")
@click.option("--duration", type=float, help="Seconds to send for.")
@click.option("--arrival", type=click.Choice(["constant", "poisson", "burst"]), default="constant",
              help="Arrival process.")
@click.option("--burst-size", default=50, help="Tickets per burst (--arrival burst).")
@click.option("--duplicate-ratio", default=0.0,
              help="Share of tickets re-sending an earlier text under a new id (exercises the cache).")
@click.option("--malformed-ratio", default=0.0, help="Share of bad messages (exercises the dead-letter path).")
@click.option("--seed", default=0, help="Seeds order, duplicates, bad messages, gaps.")
@click.option("--linger-ms", default=5, help="Producer linger.")
@click.option("--brokers", help="Bootstrap servers (default: TRIAGE_BROKERS).")
@click.option("--metrics-url",
              help="Worker /metrics URL; its batch-size histogram goes into the report (e.g. http://127.0.0.1:6066/metrics).")
@click.option("--drain-timeout", default=30.0,
              help="After the last send, stop once no output arrived for this many seconds.")
@click.option("--out", "out_root", type=click.Path(path_type=Path),
              help="Results root (default: <TRIAGE_RESULTS_DIR>/loadtest); each run writes <out>/<run_id>/.")
@click.option("--plots/--no-plots", default=True, help="Write PNG plots beside report.json.")
@_LIVE
def replay_cmd(
    rate: str, brokers: str | None, metrics_url: str | None, drain_timeout: float, out_root: Path | None,
    plots: bool, live: bool, data_dir: Path | None, **replay: Any,
) -> None:
    """Replay a data folder's split (or a Ticket JSONL) onto the input topic as live tickets and collect the outputs.

    Every ticket carries its send time and ground truth in metadata.loadtest; the collector reads every
    output topic and reports lost (must be 0), latency percentiles, throughput, online accuracy, cache hits
    and per-topic counts, writing report.json and PNG plots. Exits 1 when any ticket is lost.
    """
    from loadtest.run import run_loadtest
    from loadtest.settings import LoadtestSettings
    from loadtest.source import load_source
    from loadtest.summary import print_report

    settings = LoadtestSettings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    config = _replay_config(rate=None if rate.lower() == "max" else rate, **replay)
    records = load_source(config.source, settings.data_dir, settings.hub_dataset)
    report = asyncio.run(run_loadtest(
        brokers or settings.brokers, settings.topics, records, config, drain_timeout_s=drain_timeout,
        metrics_url=metrics_url, live=live, plots=plots, out_root=out_root or settings.results_dir / "loadtest",
    ))
    print_report(report)
    if report.counts.lost:
        click.echo(f"{report.counts.lost} ticket(s) lost: produced but never seen on any output topic — check the "
                   f"worker's logs and that it consumes {settings.topics.incoming!r} on {brokers or settings.brokers}",
                   err=True)
        sys.exit(1)


@click.command("demo", context_settings=_SHOW_DEFAULTS)
@click.option("--brokers", help="Use this Kafka instead of starting the embedded broker.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path),
              help="Checkpoint to serve (default: <TRIAGE_MODELS_DIR>/latest, trained with --preset quick if missing).")
@click.option("--count", default=3000, help="Test tickets to replay.")
@click.option("--rate", default=100.0, help="Mean tickets/s (Poisson arrivals).")
@click.option("--duplicate-ratio", default=0.1, help="Share of repeated texts (cache hits).")
@click.option("--malformed-ratio", default=0.01, help="Share of bad messages (dead letters).")
@click.option("--offtopic-ratio", default=0.05,
              help="Share of generated off-topic texts (greetings, spam, other domains); the report counts the paged.")
@click.option("--seed", default=0, help="Seeds the replay.")
@_DATA
@_LIVE
@click.option("--verbose", is_flag=True,
              help="Leave log events, warnings and progress bars on the screen (default: demo.log).")
@click.option("--feedback", "feedback_round", is_flag=True,
              help="Instead: one feedback round on drifted (hurried-typing) traffic — live accuracy before, a "
              "candidate trained on agents' labels, the gate, the hot reload, live accuracy after (--count tickets "
              "per side; needs Redis).")
def demo_cmd(brokers: str | None, model_dir: Path | None, live: bool, verbose: bool, data_dir: Path | None,
             feedback_round: bool, **replay: Any) -> None:
    """Run everything once: broker, cache, model (trained if missing), worker, a replay, the report.

    Starts the embedded Kafka-compatible broker unless --brokers is given, uses Redis at TRIAGE_REDIS__URL
    (falls back to the worker's in-process cache, saying so, when it is not reachable), trains the quick
    model (on --data, else Banking77) when no checkpoint exists, starts the worker, replays the test tickets with a
    share of
    off-topic texts, prints the report and stops every process it started. Log events go to demo.log in the
    results folder (the broker and the worker log beside it). Exits 1 if any ticket was lost or a process
    was left behind.
    """
    from pydantic import ValidationError

    from inference.logging import configure_logging
    from loadtest.demo import run_demo
    from loadtest.processes import Terminated
    from loadtest.settings import LoadtestSettings
    from worker.settings import WorkerSettings

    try:
        settings, worker = LoadtestSettings(), WorkerSettings()
        if data_dir is not None:
            settings = settings.model_copy(update={"data_dir": data_dir})
    except ValidationError as exc:
        raise click.ClickException(f"invalid TRIAGE_* settings:\n{exc}") from exc
    if feedback_round:
        from loadtest.feedback_demo import run_feedback_demo

        model = model_dir or settings.models_dir / "latest"
        sys.exit(run_feedback_demo(settings, model, worker.redis.url, count=replay["count"], seed=replay["seed"]))
    config = _replay_config(source="test", arrival="poisson", **replay)
    if not verbose:  # JSON events in demo.log unless --log-pretty
        root = click.get_current_context().find_root().params
        configure_logging(root["log_level"], json=root["log_json"] is not False)
    try:
        sys.exit(run_demo(settings, worker, config, brokers, model_dir, live=live, verbose=verbose))
    except (KeyboardInterrupt, Terminated):
        click.echo("demo interrupted; every process it started has been stopped", err=True)
        sys.exit(130)


@click.command("broker")
@click.option("--port", default=9092, show_default=True, help="Port on 127.0.0.1 to listen on.")
def broker_cmd(port: int) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) in the foreground until Ctrl-C.

    For trying the worker without a Kafka cluster: everything it holds is lost when it stops.
    """
    import signal

    from loadtest.broker import EmbeddedBroker

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with EmbeddedBroker(port=port) as broker:
        click.echo(f"broker listening on {broker.bootstrap} (memory only; Ctrl-C stops it)")
        stop.wait()
    click.echo("broker stopped")


COMMANDS: list[click.Command] = [replay_cmd, demo_cmd, broker_cmd, bench_group]
