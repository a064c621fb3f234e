"""The ``triage`` console entry point: one command line over the trainer, the worker and the load tools.

Heavy libraries (torch, transformers, faust) are imported inside each command so ``triage --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from inference.errors import UserError
from loadtest.cli import COMMANDS as LOADTEST_COMMANDS
from trainer.cli import COMMANDS as TRAINER_COMMANDS
from triage.feedback_cli import COMMANDS as FEEDBACK_COMMANDS
from worker.cli import COMMANDS as WORKER_COMMANDS

__all__ = ["main"]


class _TriageGroup(click.Group):
    """Errors a user can fix (no data, no or bad checkpoint, no base model) end any command with one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_TriageGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--log-level", default="INFO", show_default=True, envvar="TRIAGE_LOG_LEVEL", help="Log level.")
@click.option("--log-json/--log-pretty", default=None, help="Force JSON or pretty logs (default: JSON unless a TTY).")
def main(log_level: str, log_json: bool | None) -> None:
    """Triage support tickets from Kafka with a fine-tuned transformer (Banking77 by default, or your own)."""
    from inference.logging import configure_logging

    configure_logging(log_level, json=log_json)


@main.command("schemas")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("docs/schemas"), show_default=True,
              help="Folder to write <message>.schema.json files into.")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Checkpoint whose categories Triage.category may take [the default taxonomy's].")
def schemas_cmd(out_dir: Path, model: Path | None) -> None:
    """Export the JSON Schema of every topic's message (the category enum is the served checkpoint's)."""
    from inference.checkpoint import resolve_checkpoint
    from schemas.export import export_json_schemas
    from schemas.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(resolve_checkpoint(model) / "taxonomy.csv") if model else load_taxonomy()
    for path in export_json_schemas(out_dir, taxonomy):
        click.echo(str(path))


@main.command("settings")
def settings_cmd() -> None:
    """Print every TRIAGE_* environment variable of every component as Markdown tables."""
    from triage.settings_doc import component_settings, markdown_table

    for title, settings_cls in component_settings().items():
        click.echo(f"### {title}\n\n{markdown_table(settings_cls)}\n")


for _command in (*TRAINER_COMMANDS, *WORKER_COMMANDS, *LOADTEST_COMMANDS, *FEEDBACK_COMMANDS):
    main.add_command(_command)
