"""Flatten pydantic-settings classes into their environment variables, for docs and drift checks."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

__all__ = ["EnvVar", "component_settings", "env_vars", "markdown_table"]


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    description: str
    secret: bool


def _model_type(annotation: Any) -> type[BaseModel] | None:
    """The nested model class of a field, also through ``Optional[...]``."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or typing.get_origin(
        annotation
    ) is typing.Union else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, SecretStr):
        return "(secret)"
    if value is None:
        return ""
    return str(value.value if hasattr(value, "value") else value)


def _walk(model: type[BaseModel], prefix: str, delimiter: str) -> list[EnvVar]:
    rows: list[EnvVar] = []
    for name, field in model.model_fields.items():
        env = f"{prefix}{name}".upper()
        nested = _model_type(field.annotation)
        if nested is not None:
            rows.extend(_walk(nested, f"{env}{delimiter}", delimiter))
            continue
        secret = "SecretStr" in str(field.annotation)
        rows.append(EnvVar(env, _default(field), field.description or "", secret))
    return rows


def env_vars(settings_cls: type[BaseSettings]) -> list[EnvVar]:
    """Every environment variable a settings class reads (nested models flattened with its delimiter)."""
    config = settings_cls.model_config
    return _walk(settings_cls, config.get("env_prefix", ""), config.get("env_nested_delimiter") or "__")


def markdown_table(settings_cls: type[BaseSettings]) -> str:
    lines = ["| Variable | Default | Description |", "|---|---|---|"]
    for var in env_vars(settings_cls):
        default = f"`{var.default}`" if var.default and not var.default.startswith("(") else var.default
        lines.append(f"| `{var.name}` | {default} | {var.description.replace('|', '/')} |")
    return "\n".join(lines)


def component_settings() -> dict[str, type[BaseSettings]]:
    """The settings class of each component, titled for the docs."""
    from loadtest.settings import LoadtestSettings
    from trainer.config import TrainerSettings
    from worker.settings import WorkerSettings

    return {
        "Worker (`triage worker`)": WorkerSettings,
        "Trainer (`triage train`, `evaluate`, `classify`, `export`, `data report`)": TrainerSettings,
        "Load tools (`triage replay`, `collect`, `demo`, `bench`)": LoadtestSettings,
    }
