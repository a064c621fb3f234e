"""Environment for the load tools: where the broker, the data and the results are (``TRIAGE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from inference.checkpoint import DEFAULT_MODELS_DIR
from schemas.topics import TopicSettings

__all__ = ["LoadtestSettings", "parse_brokers"]


def parse_brokers(brokers: str) -> list[str]:
    """``host:port`` list from a comma-separated value, accepting Faust's ``kafka://`` URLs too."""
    hosts = [part.strip().removeprefix("kafka://").rstrip("/") for part in brokers.split(",")]
    return [h for h in hosts if h]


class LoadtestSettings(BaseSettings):
    """Built once by each ``triage replay|demo|bench`` command and passed down."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", env_nested_delimiter="__", extra="ignore")

    brokers: str = Field(default="localhost:9092", description="Kafka bootstrap servers, comma-separated.")
    topics: TopicSettings = Field(default_factory=TopicSettings, description="The worker's topic names.")
    data_dir: Path | None = Field(
        default=None,
        description="Data folder replayed and trained on (docs/own-tickets.md); None: Banking77 from the hub.",
    )
    hub_dataset: str = Field(default="PolyAI/banking77", description="Hub dataset tried when no local folder is set.")
    models_dir: Path = Field(default=DEFAULT_MODELS_DIR, description="Checkpoint root; the demo trains into it.")
    results_dir: Path = Field(
        default=Path("results"), description="Reports and plots land under <results_dir>/loadtest."
    )
