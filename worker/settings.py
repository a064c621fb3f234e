"""Every knob of the streaming worker, read once from ``TRIAGE_*`` environment variables at the entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.kafka import KafkaSecuritySettings
from schemas.topics import TopicSettings
from schemas.validation import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["RedisSettings", "ThresholdOverrides", "WorkerSettings"]


class RedisSettings(BaseModel):
    """The cache of repeated queries; the worker runs without it whenever it is disabled or unreachable."""

    backend: Literal["redis", "memory"] = Field(
        default="redis",
        description="redis: shared by every worker, survives restarts; memory: a per-process LRU for running "
        "without Redis (demo, laptops), lost on restart.",
    )
    url: str = Field(default="redis://localhost:6379/0", description="Redis URL (redis:// or rediss:// for TLS).")
    password: SecretStr | None = Field(default=None, description="Redis password, when not in the URL.")
    ttl_s: int = Field(default=86_400, ge=1, description="Seconds a cached answer for a text lives.")
    ticket_ttl_s: int = Field(
        default=600, ge=1,
        description="Seconds a ticket's idempotency record (the triage as published, for byte-identical "
        "redeliveries) lives; it only has to outlive a redelivery: session timeout + commit interval + a restart.",
    )
    key_prefix: str = Field(default="triage", description="Prefix of every cache key: <prefix>:<model version>:<hash>.")
    enabled: bool = Field(default=True, description="Use the cache at all.")
    timeout_ms: int = Field(
        default=100, ge=1, description="A Redis call slower than this is abandoned and the batch goes on uncached.")
    retry_interval_s: float = Field(
        default=5.0, gt=0, description="After a Redis failure, seconds before the worker tries Redis again.")
    memory_max_entries: int = Field(
        default=100_000, ge=1, description="Entries the memory backend keeps (least recently used go first).")

    def password_value(self) -> str | None:
        """The password in clear, for the client that needs it (the settings' repr keeps it hidden)."""
        return self.password.get_secret_value() if self.password else None


def _threshold(description: str) -> float | None:
    """An optional probability; None keeps the checkpoint's own value."""
    return Field(default=None, ge=0.0, le=1.0, description=f"{description} (default: the checkpoint's).")


class ThresholdOverrides(BaseModel):
    """Optional overrides of the decision thresholds stored with each checkpoint."""

    high_priority: float | None = _threshold("Priority is High when P(High) is at least this")
    review: float | None = _threshold("needs_review when the category probability is below this")
    out_of_scope: float | None = _threshold("out_of_scope when scope_score is below this")
    high_priority_out_of_scope: float | None = _threshold("Out-of-scope tickets page only at P(High) of at least this")
    far_out_of_scope: float | None = _threshold("No ticket pages when scope_score is below this")


class WorkerSettings(BaseSettings):
    """Settings of ``triage worker``; each field is the environment variable ``TRIAGE_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", env_nested_delimiter="__", extra="ignore", validate_default=True)

    brokers: str = Field(default="localhost:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    group_id: str = Field(
        default="ticket-triage", description="Consumer group and Faust app id; workers sharing it split the partitions."
    )
    topics: TopicSettings = Field(default_factory=TopicSettings, description="Topic names and layout.")
    model_dir: Path = Field(
        default=Path("models/finetuned/latest"),
        description="Checkpoint folder or the `latest` link, watched for reloads.")
    model_backend: Literal["auto", "torch", "onnx", "onnx-int8", "noop"] = Field(
        default="auto",
        description="auto: on CUDA torch in bf16/fp16, on CPU the checkpoint's int8 ONNX export when its "
        "validation verdict says fit, else the fp32 export, else torch (/health says which and why); "
        "torch: the safetensors weights in fp32; onnx/onnx-int8: that export; noop: a constant answer without "
        "a model (pipeline benchmarks).",
    )
    device: str | None = Field(
        default=None, description="Torch device (cpu, cuda, cuda:1); default: CUDA when present.")
    model_process: bool = Field(
        default=True,
        description="Run the model in a child process, so forward passes and the event loop never wait for "
        "each other's GIL; off: a thread of the worker process.",
    )
    model_call_timeout_s: float = Field(
        default=30.0, gt=0,
        description="Deadline of one model call: past it the model process is killed and restarted and the call "
        "retried (a hung model must not stop the worker while it looks healthy).",
    )
    model_load_timeout_s: float = Field(default=300.0, gt=0, description="Longest a model process may take to "
                                        "load; past it the load failed (a restart is retried, a reload refused).")
    model_hang_s: float = Field(default=10.0, gt=0, description="A model process stopped (SIGSTOP) or in a call "
                                "without using CPU this long is killed and restarted (not ready after 2 s of it).")
    torch_threads: int | None = Field(
        default=None, ge=1,
        description="Torch (and ONNX Runtime) intra-op threads; default: the CPU cores available to the process.")
    batch_size: int = Field(
        default=128, ge=1, le=4096,
        description="Most tickets in one micro-batch, and most texts in one model call (micro-batches that wait "
        "while the model is busy are merged up to this).",
    )
    max_batch_tokens: int | None = Field(
        default=None, ge=16,
        description="Most padded tokens per forward pass: a micro-batch is sorted by length and split so that "
        "short texts are not padded to long ones; default 512 on CPU, 16384 on a GPU.",
    )
    batch_wait_ms: float = Field(
        default=10.0, gt=0, le=1000, description="Longest a ticket waits for its micro-batch to fill.")
    max_inflight_batches: int = Field(
        default=8, ge=1, le=64,
        description="Micro-batches between take and broker ack at once: they are validated and looked up while "
        "the model is busy, then merged into its next call.",
    )
    max_inflight_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1024 * 1024,
        description="Bytes of fetched messages not yet committed (buffered or in flight); the consumer stops "
        "fetching while they are over this (plus at most one fetch per partition).",
    )
    redis: RedisSettings = Field(default_factory=RedisSettings, description="Cache of repeated queries.")
    kafka: KafkaSecuritySettings = Field(default_factory=KafkaSecuritySettings, description="Kafka security.")
    thresholds: ThresholdOverrides = Field(
        default_factory=ThresholdOverrides, description="Overrides of the checkpoint's decision thresholds.")
    web_host: str = Field(default="0.0.0.0", description="Address of the /health and /metrics server.")
    web_port: int = Field(default=6066, ge=1, le=65535, description="Port of the /health and /metrics server.")
    max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=1, description="Larger incoming messages are dead-lettered unparsed.")
    deadletter_payload_bytes: int = Field(
        default=64 * 1024, ge=0,
        description="Bytes of an invalid message's payload kept in its dead letter (the rest is cut); a valid "
        "ticket's dead letter keeps its whole payload.",
    )
    max_output_bytes: int = Field(
        default=1_048_588, ge=1024,
        description="Largest record batch the brokers accept (their max.message.bytes); a ticket whose enriched "
        "record is larger, even compressed, is dead-lettered as output_too_large.",
    )
    output_compression: Literal["lz4", "zstd", "gzip", "none"] = Field(
        default="lz4", description="Compression of the record batches the worker produces.")
    reload_interval_s: float = Field(
        default=5.0, ge=0, description="How often model_dir is checked for a new checkpoint; 0 turns hot reload off.")
    shutdown_grace_s: float = Field(
        default=30.0, gt=0, description="On SIGTERM, how long in-flight batches may take to finish before exit.")
    fetch_wait_ms: int = Field(
        default=20, ge=1, le=1500,
        description="Longest the consumer's fetch waits on an empty partition (Faust's own default is 1500 ms, "
        "a latency floor for quiet topics).",
    )
    produce_timeout_s: float = Field(default=60.0, gt=0, description="Longest the broker may take to acknowledge "
                                     "a produced batch; past it the worker exits unacked (Faust's default: 20 min).")
    producer_stall_s: float = Field(default=10.0, gt=0, description="/health says not ready (producer_stalled) "
                                    "while a produced record batch has waited this long for its ack.")
    commit_interval_s: float = Field(
        default=1.0, gt=0, description="How often offsets of fully published tickets are committed.")
    session_timeout_s: float = Field(
        default=10.0, ge=6, le=300,
        description="A worker silent this long (crashed, killed) loses its partitions to the others.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new consumer group starts reading tickets.incoming.")
    state_dir: Path = Field(
        default=Path(".triage-worker"), description="Writable folder for the Faust worker's local state.")
    log_level: str = Field(default="INFO", description="Log level of the worker's JSON logs.")

    @property
    def bootstrap_servers(self) -> list[str]:
        return [server.strip() for server in self.brokers.split(",") if server.strip()]
