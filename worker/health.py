"""``/health`` (ready or not, and why), ``/live`` and ``/metrics`` on Faust's web server.

Live: the process answers; a worker that is not ready recovers by itself (it waits for its model, its broker),
so a liveness probe must not restart it. Ready: the model answers, Kafka is reachable and produced records are
acknowledged; ``reason_code`` says which one is missing (``model_loading``, ``model_down``, ``kafka_unreachable``,
``producer_stalled``, ``stopping``) and ``reason`` how.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.agents import BatchRunner
from worker.cache import TriageCache
from worker.metrics import WorkerMetrics
from worker.model import ModelClient
from worker.transport import InflightBytes

__all__ = ["HealthCheck", "register_pages"]

_KAFKA_TIMEOUT_S = 2.0
_KAFKA_CACHE_S = 1.0


class HealthCheck:
    """Answers whether this worker can do its job right now."""

    def __init__(self, app: faust.App, model: ModelClient, cache: TriageCache, runner: BatchRunner) -> None:
        self.app = app
        self.model = model
        self.cache = cache
        self.runner = runner
        self._kafka_checked_at = 0.0
        self._kafka_ok = False

    async def kafka_reachable(self) -> bool:
        """A broker accepts a connection from the producer's client (checked at most once a second)."""
        if time.monotonic() - self._kafka_checked_at < _KAFKA_CACHE_S:
            return self._kafka_ok
        try:
            client = self.app.producer._ensure_producer().client  # type: ignore[attr-defined]
            nodes = [broker.nodeId for broker in client.cluster.brokers()] or ["bootstrap"]
            ok = False
            for node in nodes:
                if ok := bool(await asyncio.wait_for(client.ready(node), _KAFKA_TIMEOUT_S)):
                    break
        except Exception:  # noqa: BLE001 - any failure means not reachable
            ok = False
        self._kafka_ok, self._kafka_checked_at = ok, time.monotonic()
        return ok

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """Ready, and the body: ``reason_code`` and ``reason`` say why not."""
        kafka = await self.kafka_reachable()
        loaded = self.model.version is not None
        unconfirmed = self.runner.unconfirmed_s
        code, reason = None, None
        if not loaded:
            code, reason = "model_loading", "no model loaded yet"
        elif self.model.problem is not None:
            code, reason = "model_down", self.model.problem
        elif not kafka:
            code, reason = "kafka_unreachable", "no Kafka broker reachable"
        elif not self.runner.outputs_ready:
            code, reason = "topics_preparing", "output topics not created or described yet"
        elif unconfirmed >= self.runner.settings.producer_stall_s:
            code, reason = "producer_stalled", f"a produced record batch has waited {unconfirmed:.0f} s for its ack"
        elif self.app.should_stop:
            code, reason = "stopping", "stopping"
        engine = self.model.engine if loaded else None
        return reason is None, {
            "status": "ready" if reason is None else "not_ready", "live": True,
            "reason_code": code, "reason": reason, "model_loaded": loaded, "model_version": self.model.version,
            "model_serving": engine.serving if engine is not None else None,
            "model_pid": engine.pid if engine is not None else None, "kafka_reachable": kafka,
            "oldest_unconfirmed_produce_s": round(unconfirmed, 3), "cache_available": self.cache.available,
            "stopping": self.app.should_stop}


def register_pages(app: faust.App, health: HealthCheck, metrics: WorkerMetrics, inflight: InflightBytes) -> None:
    """Add the three pages to the app's web server (``web_port``)."""

    @app.page("/live")
    async def live_page(self: View, request: Request) -> Response:
        return self.json({"status": "live"})

    @app.page("/health")
    async def health_page(self: View, request: Request) -> Response:
        ready, body = await health.report()
        return self.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics_page(self: View, request: Request) -> Response:
        metrics.inflight_bytes.set(inflight.held)
        metrics.model_up.set(health.model.version is not None and health.model.problem is None)
        metrics.unconfirmed_produce_seconds.set(health.runner.unconfirmed_s)
        return self.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
