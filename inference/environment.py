"""A settings class as ``TRIAGE_*`` environment variables, both ways: every variable it reads (for ``--help``
and the settings tables) and the variables that set given values (for a worker started as a child process).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

__all__ = ["EnvVar", "env_vars", "flatten_env"]


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


def flatten_env(values: Mapping[str, Any], prefix: str = "TRIAGE_") -> dict[str, str]:
    """``{"redis": {"url": u}}`` → ``{"TRIAGE_REDIS__URL": u}``: the worker's own settings names."""
    env: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key.upper()}"
        if isinstance(value, Mapping):
            env.update(flatten_env(value, f"{name}__"))
        elif value is not None:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
