"""Click commands this package adds to ``triage``."""

from __future__ import annotations

from collections.abc import Iterator

import click
from pydantic import BaseModel

from worker.settings import WorkerSettings

__all__ = ["COMMANDS", "settings_help"]


def _env_names(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}", field.description or ""


def settings_help() -> str:
    """One line per environment variable of ``WorkerSettings``, for ``triage worker --help``."""
    return "\n".join(f"  {env}: {text}" for env, text in _env_names(WorkerSettings, "TRIAGE_"))


@click.command("worker", epilog="\b\nSettings (environment variables):\n" + settings_help())
def worker_cmd() -> None:
    """Run the streaming worker: tickets.incoming → triage → routing topics, until SIGTERM."""
    from pydantic import ValidationError

    from triage.checkpoint import CheckpointError
    from worker.runner import run_worker

    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid TRIAGE_* worker settings:\n{exc}") from exc
    try:
        run_worker(settings)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc


COMMANDS: list[click.Command] = [worker_cmd]
