"""Click commands this package adds to ``triage``."""

from __future__ import annotations

import click

from inference.environment import env_vars
from worker.settings import WorkerSettings

__all__ = ["COMMANDS"]

_SETTINGS = "\n".join(f"  {var.name}: {var.description}" for var in env_vars(WorkerSettings))


@click.command("worker", epilog="\b\nSettings (environment variables):\n" + _SETTINGS)
def worker_cmd() -> None:
    """Run the streaming worker: tickets.incoming → triage → routing topics, until SIGTERM."""
    from worker.runner import main

    main()


COMMANDS: list[click.Command] = [worker_cmd]
