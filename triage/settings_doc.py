"""The settings tables of ``triage settings`` and docs/configuration.md: every component's ``TRIAGE_*`` variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from inference.environment import env_vars

__all__ = ["component_settings", "markdown_table"]


def markdown_table(settings_cls: type[BaseSettings]) -> str:
    lines = ["| Variable | Default | Description |", "|---|---|---|"]
    for var in env_vars(settings_cls):
        default = f"`{var.default}`" if var.default and not var.default.startswith("(") else var.default
        description = var.description.replace("|", "/").replace("<", "&lt;")  # <prefix> is text, not a tag
        lines.append(f"| `{var.name}` | {default} | {description} |")
    return "\n".join(lines)


def component_settings() -> dict[str, type[BaseSettings]]:
    """The settings class of each component, titled for the docs."""
    from feedback.settings import FeedbackSettings
    from loadtest.settings import LoadtestSettings
    from trainer.config import TrainerSettings
    from worker.settings import WorkerSettings

    return {
        "Worker (`triage worker`)": WorkerSettings,
        "Trainer (`triage train`, `evaluate`, `classify`, `export`, `data report`)": TrainerSettings,
        "Load tools (`triage replay`, `demo`, `bench`)": LoadtestSettings,
        "Feedback process (`triage feedback consume`, `send`, `snapshot`)": FeedbackSettings,
    }
