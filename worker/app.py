"""The Faust app: ``create_app(settings)`` wires every component; ``worker.app.app`` serves ``faust -A worker.app``.

``app`` is built from the environment on first access only, so ``triage worker`` and the tests can build
their own app from their own settings without a second, environment-built one appearing on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import structlog
from faust.sensors.prometheus import PrometheusMonitor

from schemas.kafka import kafka_credentials
from worker.agents import BatchRunner, register_agent
from worker.cache import TriageCache
from worker.health import HealthCheck, register_pages
from worker.metrics import WorkerMetrics
from worker.model import ModelClient
from worker.pipeline import TriagePipeline
from worker.publisher import ensure_output_topics, smallest_topic_limit
from worker.reload import ModelReloader
from worker.routing import served_categories
from worker.settings import WorkerSettings
from worker.transport import InflightBytes, TriageApp

__all__ = ["create_app"]

log = structlog.get_logger(__name__)


def create_app(settings: WorkerSettings) -> faust.App:
    """Build the worker's Faust app and its components from one settings object."""
    app = TriageApp(
        settings.group_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        broker_credentials=kafka_credentials(settings.kafka),
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        consumer_auto_offset_reset=settings.auto_offset_reset,
        datadir=str(settings.state_dir),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        producer_request_timeout=settings.produce_timeout_s,
        producer_compression_type=None if settings.output_compression == "none" else settings.output_compression,
        # One record may be up to max_output_bytes (checked before sending); leave room for the request framing.
        producer_max_request_size=settings.max_output_bytes + 64 * 1024,
        # Shutdown finishes only the batches in flight (``BatchRunner.drain``), not everything fetched.
        stream_wait_empty=False,
        stream_buffer_maxsize=max(4096, 2 * settings.batch_size * settings.max_inflight_batches),
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_allow_declare=settings.topics.create,
        topic_disable_leader=True,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_stats_enabled=False, web_graph_enabled=False, web_router_enabled=False, web_tables_enabled=False,
        worker_redirect_stdouts=False,
        Worker="worker.runner:TriageWorker",
        # Faust's repaired Cython fast path takes queued events without awaiting: per-message overhead is
        # the no-op pipeline's ceiling, and this roughly doubled Faust's delivery rate to the stream here.
        cython_optimizations=True,
    )
    app.triage_settings = settings
    app.inflight = InflightBytes(settings.max_inflight_bytes)
    metrics = WorkerMetrics()
    app.monitor = PrometheusMonitor(metrics=metrics.faust)
    cache = TriageCache(settings.redis, metrics)
    model = ModelClient(settings, metrics)

    async def prepare_outputs(checkpoint: Path | None) -> None:
        """Before a checkpoint (None: no-op) serves: its routes exist, records are held to the topics' limits."""
        categories = served_categories(checkpoint)
        if settings.topics.create:
            await ensure_output_topics(app, settings.topics, categories)
        pipeline.bound_outputs(await smallest_topic_limit(app, settings.topics.outputs(categories)))

    reloader = ModelReloader(settings, model, metrics, before_swap=prepare_outputs)
    pipeline = TriagePipeline(settings, cache, model, metrics)
    runner = BatchRunner(app, settings, pipeline, app.inflight, metrics)
    health = HealthCheck(app, model, cache, runner)
    app.drain = runner.drain
    register_agent(app, settings, runner, prepare_outputs)
    register_pages(app, health, metrics, app.inflight)

    @app.task
    async def load_model() -> None:
        await cache.connect()
        try:
            await reloader.load_initial()
        except Exception as exc:  # noqa: BLE001 - reported, then the worker stops: nothing to serve
            log.error("model_load_failed", path=str(settings.model_dir), error=type(exc).__name__, detail=str(exc))
            await app.crash(exc)

    if reloader.watching:

        @app.timer(settings.reload_interval_s)
        async def watch_model() -> None:
            if model.version is not None:
                await reloader.check()

    async def close_components(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        await cache.close()
        model.close()
        log.info("worker_stopped", model_version=model.version)

    # Runs after the in-flight batches were drained and committed; mode types async receivers too narrowly.
    app.on_before_shutdown.connect(close_components)  # type: ignore[arg-type]

    return app


def __getattr__(name: str) -> faust.App:
    """``faust -A worker.app worker``: the app built from ``TRIAGE_*`` settings, on first access."""
    if name != "app":
        raise AttributeError(name)
    app = create_app(WorkerSettings())
    globals()["app"] = app
    return app
