"""Read docker-compose.yml, the Dockerfile and the settings classes the way Docker and the code do.

No Docker engine or compose binary is needed: compose interpolation (``${VAR:-default}``,
``${VAR:?message}``) and YAML merge keys are applied here, and the valid ``TRIAGE_*`` names come from
the real pydantic-settings classes (via ``triage.settings_doc``) and click options, so compose and code
cannot drift apart.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic_settings import BaseSettings

from inference.environment import env_vars

__all__ = [
    "COMPOSE_FILE",
    "DOCKERFILE",
    "REPO",
    "Instruction",
    "InterpolationError",
    "cli_command",
    "cli_envvars",
    "interpolate",
    "load_compose",
    "parse_dockerfile",
    "service_env",
    "settings_env_names",
    "stages",
]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"

_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` variable is unset, as ``docker compose`` would refuse to start."""


def interpolate(value: str, env: dict[str, str]) -> str:
    """Apply compose variable substitution to one string."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        missing = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":?", "?"):
            if missing:
                raise InterpolationError(f"{name}: {arg}")
            return str(current)
        return current or ""

    return _VAR.sub(substitute, value)


def _resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, env) for value in node]
    return node


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose model after YAML merge keys, interpolated with ``env`` (raw ``${...}`` when None)."""
    model: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return model if env is None else _resolve(model, env)


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict of strings, from either the mapping or the list form."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def settings_env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads, nested models flattened (upper case)."""
    return {var.name.upper() for var in env_vars(settings)}


def cli_command(group: click.Group, name: str) -> click.Command:
    """A ``triage`` sub-command by name, with an error that lists the real ones."""
    command = group.commands.get(name)
    if command is None:
        raise KeyError(f"`triage {name}` does not exist; the CLI has {sorted(group.commands)}")
    return command


def cli_envvars(*commands: click.Command) -> set[str]:
    """Environment variables that click options of these commands read (``envvar=``)."""
    names: set[str] = set()
    for command in commands:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                names.add(envvar.upper())
            elif envvar:
                names.update(str(item).upper() for item in envvar)
    return names


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword, its argument text, and the stage it belongs to."""

    keyword: str
    args: str
    stage: str

    def exec_form(self) -> list[str] | None:
        """The JSON-array form of CMD/ENTRYPOINT/RUN, else None."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        return list(yaml.safe_load(text))

    def words(self) -> list[str]:
        return shlex.split(self.args)


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped, stages named."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    if pending:
        logical.append(pending)
    instructions: list[Instruction] = []
    stage = ""
    for index, text in enumerate(logical):
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stage = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"stage-{index}"
        instructions.append(Instruction(keyword, args.strip(), stage))
    return instructions


def stages(instructions: list[Instruction]) -> dict[str, list[Instruction]]:
    """Instructions grouped by stage name, in file order (global ARGs before the first FROM are '')."""
    grouped: dict[str, list[Instruction]] = {}
    for instruction in instructions:
        grouped.setdefault(instruction.stage, []).append(instruction)
    return grouped
