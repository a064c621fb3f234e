"""``triage feedback send|consume|snapshot`` and ``triage promote``: the feedback loop's command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["COMMANDS"]

_PATH = click.Path(path_type=Path)


@click.group("feedback")
def feedback_group() -> None:
    """Agents' final labels: send them, join them with what was published, turn them into training data."""


@feedback_group.command("send")
@click.argument("csv_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--brokers", default=None, help="Kafka bootstrap servers [env TRIAGE_BROKERS].")
@click.option("--topic", default=None, help="Feedback topic [env TRIAGE_TOPICS__FEEDBACK, tickets.feedback].")
def send_cmd(csv_file: Path, brokers: str | None, topic: str | None) -> None:
    """Back-fill the feedback topic from a CSV export (ticket_id, label or category+priority, text, agent,
    closed_at); invalid rows are listed and not sent (exit code 1 when there were any)."""
    from feedback.producer import RowProblem, read_feedback_csv, send_feedback
    from feedback.settings import FeedbackSettings
    from loadtest.broker import create_topics
    from schemas.feedback import Feedback

    settings = FeedbackSettings()
    bootstrap = brokers or settings.brokers
    name = topic or settings.topics.feedback
    try:
        rows = list(read_feedback_csv(csv_file))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    problems = [r for r in rows if isinstance(r, RowProblem)]
    messages = [r for r in rows if isinstance(r, Feedback)]
    if settings.topics.create:
        create_topics(bootstrap, {name: settings.topics.partitions})
    sent = send_feedback(bootstrap, name, messages)
    for problem in problems[:50]:
        click.echo(f"{csv_file}: {problem}", err=True)
    click.echo(f"sent {sent} feedback messages to {name}; {len(problems)} invalid rows not sent")
    if problems:
        sys.exit(1)


@feedback_group.command("consume")
def consume_cmd() -> None:
    """Run the feedback process: join feedback with published triage, export live quality on /metrics (port
    TRIAGE_FEEDBACK__WEB_PORT), append joined examples to TRIAGE_FEEDBACK__DATA_DIR/journal, until SIGTERM."""
    from feedback.runner import main

    main()


@feedback_group.command("snapshot")
@click.option("--data-dir", type=_PATH, default=None, help="Feedback folder [env TRIAGE_FEEDBACK__DATA_DIR].")
@click.option("--model", type=_PATH, default=None, help="Checkpoint whose taxonomy labels it [TRIAGE_MODEL_DIR].")
@click.option("--held-out", type=click.FloatRange(0.0, 0.9), default=0.2, show_default=True,
              help="Share of tickets kept out of training for the promotion gate (by a hash of the ticket id).")
def snapshot_cmd(data_dir: Path | None, model: Path | None, held_out: float) -> None:
    """Cut the next versioned data folder (versions/vNNNN, + latest) from the joined feedback so far."""
    from feedback.settings import FeedbackSettings
    from inference.checkpoint import resolve_checkpoint
    from schemas.taxonomy import load_taxonomy
    from trainer.feedback import snapshot

    settings = FeedbackSettings()
    taxonomy = load_taxonomy(resolve_checkpoint(model or settings.model_dir) / "taxonomy.csv")
    made = snapshot(data_dir or settings.feedback.data_dir, taxonomy, held_out)
    skipped = ", ".join(f"{n} {why}" for why, n in made.skipped.items())
    click.echo(f"{made.path}: {made.train} train, {made.test} held out (skipped: {skipped})")


@click.command("promote")
@click.argument("candidate", type=_PATH)
@click.option("--feedback", type=_PATH, default=None, help="Feedback folder whose held-out part is scored.")
@click.option("--data", type=_PATH, default=None, help="Base data folder whose test split is scored [TRIAGE_DATA_DIR].")
@click.option("--latest", type=_PATH, default=None, help="The link the worker serves [<models dir>/latest].")
@click.option("--high-recall-bar", type=click.FloatRange(0.0, 1.0), default=0.9, show_default=True,
              help="Least High recall the candidate must keep on every set.")
@click.option("--tolerance", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Category accuracy the candidate may lose against the current one.")
@click.option("--min-high", type=click.IntRange(min=1), default=20, show_default=True,
              help="High recall is judged only on sets with at least this many High tickets.")
def promote_cmd(candidate: Path, feedback: Path | None, data: Path | None, latest: Path | None,
                high_recall_bar: float, tolerance: float, min_high: int) -> None:
    """Score CANDIDATE and the current checkpoint side by side; point latest at CANDIDATE only when it is not
    worse (category accuracy) and keeps High recall at or above the bar. Exit code 1 when refused."""
    from trainer.config import TrainerSettings
    from trainer.data import load_data
    from trainer.feedback import feedback_split
    from trainer.promote import promote

    settings = TrainerSettings()
    sets = {}
    if feedback is not None:
        sets["held-out feedback"] = feedback_split(feedback, "test")
    sets["base test"] = load_data(data or settings.data_dir, settings.hub_dataset).test
    link = latest or settings.models_dir / "latest"
    decision = promote(candidate, link, sets, high_recall_bar, tolerance, min_high)
    for name, pair in decision.scores.items():
        click.echo(f"{name} (n={pair['current'].n}):")
        for metric in ("category_accuracy", "label_accuracy", "high_recall"):
            values = [getattr(pair[who], metric) for who in ("current", "candidate")]
            shown = ["–" if v is None else f"{v:.2%}" for v in values]
            click.echo(f"  {metric:<18} current {shown[0]:>7}   candidate {shown[1]:>7}")
        if pair["candidate"].high_n < min_high:
            click.echo(f"  (High recall not judged: {pair['candidate'].high_n} High tickets, fewer than {min_high})")
    if decision.promote:
        click.echo(f"promoted: {link} -> {candidate.name}")
        return
    click.echo("refused: " + "; ".join(decision.reasons), err=True)
    sys.exit(1)


COMMANDS: list[click.Command] = [feedback_group, promote_cmd]
