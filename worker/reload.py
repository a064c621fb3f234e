"""Model hot reload: watch ``model_dir``, load a new checkpoint in the background, switch between batches."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from inference.checkpoint import MANIFEST
from worker.metrics import WorkerMetrics
from worker.model import ModelClient
from worker.settings import WorkerSettings

__all__ = ["Fingerprint", "ModelReloader", "fingerprint"]

log = structlog.get_logger(__name__)

Fingerprint = tuple[str, int | None]
RETRY_REFUSED_S, _RETRY_DOWN_S = 60.0, 5.0


def fingerprint(model_dir: Path) -> Fingerprint:
    """Where ``model_dir`` points and when its manifest was written: changes when ``latest`` moves."""
    real = os.path.realpath(model_dir)
    try:
        stamp: int | None = os.stat(os.path.join(real, MANIFEST)).st_mtime_ns
    except OSError:
        stamp = None
    return real, stamp


class ModelReloader:
    """Loads the first model, then polls for a new one; a bad new checkpoint keeps the old one serving.

    Each batch takes the client's engine once, so a swap lands between batches. ``before_swap`` runs on the new
    checkpoint's folder before it loads (it creates the route topics of its categories); when it raises, the reload
    fails like a bad checkpoint. A refused checkpoint is tried again after ``RETRY_REFUSED_S`` (it may have failed
    for want of memory), every 5 s while the served model is down (``latest`` is then the way back).
    """

    def __init__(
        self, settings: WorkerSettings, client: ModelClient, metrics: WorkerMetrics,
        before_swap: Callable[[Path], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.before_swap = before_swap
        self.fingerprint: Fingerprint | None = None
        self._rejected: Fingerprint | None = None
        self._rejected_at = 0.0

    @property
    def watching(self) -> bool:
        return self.settings.model_backend != "noop" and self.settings.reload_interval_s > 0

    async def load_initial(self) -> None:
        """Load the configured model off the event loop; raises ``CheckpointError`` when there is none."""
        seen = fingerprint(self.settings.model_dir)
        engine = await self.client.load(Path(seen[0]) if self.watching else None)
        self.fingerprint = seen
        log.info("model_loaded", version=engine.version, requested=self.settings.model_backend, **engine.serving)

    async def check(self) -> bool:
        """Reload when ``model_dir`` changed since the last load; True when a new model was swapped in."""
        seen = fingerprint(self.settings.model_dir)
        retry = time.monotonic() - self._rejected_at >= (_RETRY_DOWN_S if self.client.problem else RETRY_REFUSED_S)
        if seen == self.fingerprint or (seen == self._rejected and not retry):
            return False
        old = self.client.version
        log.info("model_reload_started", current=old, path=seen[0])
        try:
            if self.before_swap is not None:
                await self.before_swap(Path(seen[0]))
            engine = await self.client.load(Path(seen[0]))
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old model serving
            self._rejected, self._rejected_at = seen, time.monotonic()
            self.metrics.model_reloads.labels(result="failed").inc()
            log.error(
                "model_reload_failed", current=old, path=seen[0], error=type(exc).__name__, detail=str(exc)[:300])
            return False
        self._rejected = None
        self.fingerprint = seen
        self.metrics.model_reloads.labels(result="ok").inc()
        log.info("model_reloaded", previous=old, version=engine.version, **engine.serving)
        return True
