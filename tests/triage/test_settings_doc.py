"""The configuration page is the output of `triage settings`, so the docs never drift from the settings classes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from inference.environment import env_vars
from triage.cli import main
from triage.settings_doc import component_settings

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


class _Inner(BaseModel):
    url: str = Field("redis://x", description="where")
    password: SecretStr | None = Field(None, description="secret")


class _Example(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", env_nested_delimiter="__")

    brokers: str = Field("localhost:9092", description="b")
    redis: _Inner = Field(default_factory=_Inner)
    maybe: _Inner | None = None


def test_nested_and_optional_models_are_flattened_with_the_delimiter() -> None:
    names = [v.name for v in env_vars(_Example)]
    assert names == ["TRIAGE_BROKERS", "TRIAGE_REDIS__URL", "TRIAGE_REDIS__PASSWORD", "TRIAGE_MAYBE__URL",
                     "TRIAGE_MAYBE__PASSWORD"]
    password = next(v for v in env_vars(_Example) if v.name == "TRIAGE_REDIS__PASSWORD")
    assert password.secret


def test_every_component_setting_is_documented() -> None:
    page = CONFIGURATION.read_text(encoding="utf-8")
    missing = [
        var.name
        for settings_cls in component_settings().values()
        for var in env_vars(settings_cls)
        if f"| `{var.name}` |" not in page
    ]
    assert not missing, f"docs/configuration.md lacks {missing}; paste the output of `triage settings` into it"


def test_the_configuration_page_holds_what_triage_settings_prints() -> None:
    printed = CliRunner().invoke(main, ["settings"]).output.strip()
    assert printed in CONFIGURATION.read_text(encoding="utf-8"), (
        "docs/configuration.md differs from `triage settings` (a default or description changed): "
        "paste the command's output into it"
    )


def test_settings_command_prints_the_tables() -> None:
    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0, result.output
    assert "| `TRIAGE_BROKERS` | `localhost:9092` |" in result.output
    assert "TRIAGE_KAFKA__SASL_PASSWORD" in result.output
