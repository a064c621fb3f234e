"""Every knob of the feedback process, read once from ``TRIAGE_*`` variables (shared with the worker where they
mean the same thing: brokers, Kafka security, topics, the served checkpoint, Redis)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.kafka import KafkaSecuritySettings
from schemas.topics import TopicSettings

__all__ = ["FeedbackOptions", "FeedbackSettings", "JoinStoreSettings"]


class JoinStoreSettings(BaseModel):
    """Where what the worker published per ticket waits for its feedback: Redis, one key per ticket with a TTL."""

    url: str = Field(default="redis://localhost:6379/0", description="Redis URL of the join store.")
    password: SecretStr | None = Field(default=None, description="Redis password, when not in the URL.")
    key_prefix: str = Field(default="triage-feedback", description="Prefix of every join-store key.")
    ttl_s: int = Field(
        default=14 * 86_400, ge=60,
        description="Seconds a ticket's published triage is kept for its feedback: longer than tickets stay "
        "open; feedback that comes later counts as too late.",
    )
    max_text_bytes: int = Field(
        default=2048, ge=0,
        description="Published texts up to this many UTF-8 bytes are kept for training; a longer one is joined "
        "without its text (the byte budget per ticket is about 250 bytes plus this).",
    )


class FeedbackOptions(BaseModel):
    """The feedback process's own settings (``TRIAGE_FEEDBACK__<NAME>``)."""

    group_id: str = Field(default="ticket-triage-feedback", description="Consumer group and Faust app id.")
    web_port: int = Field(default=6067, ge=1, le=65535, description="Port of its Prometheus /metrics endpoint.")
    web_host: str = Field(default="0.0.0.0", description="Address of its /metrics endpoint.")
    data_dir: Path = Field(
        default=Path("data/feedback"),
        description="Folder the joined examples accumulate in (journal/*.jsonl; `triage feedback snapshot` "
        "turns them into a versioned data folder).",
    )
    state_dir: Path = Field(default=Path(".triage-feedback"), description="Writable folder for Faust's local state.")
    session_timeout_s: float = Field(
        default=10.0, ge=6, le=300, description="A feedback process silent this long loses its partitions."
    )
    batch_size: int = Field(default=500, ge=1, description="Most records taken from a topic at once.")
    store: JoinStoreSettings = Field(default_factory=JoinStoreSettings, description="The join store.")


class FeedbackSettings(BaseSettings):
    """Settings of ``triage feedback consume``; ``brokers``, ``topics`` and ``model_dir`` are the worker's variables."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    brokers: str = Field(default="localhost:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    kafka: KafkaSecuritySettings = Field(default_factory=KafkaSecuritySettings, description="Kafka security.")
    topics: TopicSettings = Field(default_factory=TopicSettings, description="Topic names and layout.")
    model_dir: Path = Field(
        default=Path("models/finetuned/latest"),
        description="The served checkpoint: its taxonomy maps feedback labels; its validation mix is drift's "
        "reference.",
    )
    feedback: FeedbackOptions = Field(default_factory=FeedbackOptions, description="The feedback process.")
    log_level: str = Field(default="INFO", description="Log level of the feedback process's JSON logs.")

    @property
    def bootstrap_servers(self) -> list[str]:
        return [server.strip() for server in self.brokers.split(",") if server.strip()]
