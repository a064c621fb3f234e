"""Click commands this package adds to ``triage``."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
