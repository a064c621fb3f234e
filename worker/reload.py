"""Model hot reload: watch ``model_dir``, load a new checkpoint in the background, switch between batches."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from triage.checkpoint import MANIFEST
from worker.inference import Predictor, load_predictor
from worker.metrics import WorkerMetrics
from worker.settings import WorkerSettings

__all__ = ["ModelHolder", "ModelReloader", "Fingerprint"]

log = structlog.get_logger(__name__)

Fingerprint = tuple[str, int | None]
Loader = Callable[[WorkerSettings, Path | None], Predictor]


class ModelHolder:
    """The predictor being served. Each batch reads it once, so a swap lands between batches."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics
        self._predictor: Predictor | None = None
        self.fingerprint: Fingerprint | None = None
        self.ready = asyncio.Event()

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            raise RuntimeError("no model loaded yet; wait for ModelHolder.ready")
        return self._predictor

    @property
    def loaded(self) -> bool:
        return self._predictor is not None

    @property
    def version(self) -> str | None:
        return self._predictor.version if self._predictor is not None else None

    def swap(self, predictor: Predictor, fingerprint: Fingerprint | None) -> None:
        previous = self.version
        self._predictor = predictor
        self.fingerprint = fingerprint
        self._metrics.on_model(predictor.version, previous)
        self.ready.set()


def fingerprint(model_dir: Path) -> Fingerprint:
    """Where ``model_dir`` points and when its manifest was written: changes when ``latest`` moves."""
    real = os.path.realpath(model_dir)
    try:
        stamp: int | None = os.stat(os.path.join(real, MANIFEST)).st_mtime_ns
    except OSError:
        stamp = None
    return real, stamp


class ModelReloader:
    """Loads the first model, then polls for a new one; a bad new checkpoint keeps the old one serving."""

    def __init__(
        self,
        settings: WorkerSettings,
        holder: ModelHolder,
        metrics: WorkerMetrics,
        loader: Loader = load_predictor,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self._loader = loader
        self._rejected: Fingerprint | None = None

    @property
    def watching(self) -> bool:
        return self.settings.model_backend != "noop" and self.settings.reload_interval_s > 0

    async def load_initial(self) -> None:
        """Load the configured model off the event loop; raises ``CheckpointError`` when there is none."""
        seen = fingerprint(self.settings.model_dir)
        predictor = await asyncio.get_running_loop().run_in_executor(
            None, self._loader, self.settings, Path(seen[0]) if self.watching else None
        )
        self.holder.swap(predictor, seen)
        log.info("model_loaded", version=predictor.version, backend=self.settings.model_backend)

    async def check(self) -> bool:
        """Reload when ``model_dir`` changed since the last load; True when a new model was swapped in."""
        seen = fingerprint(self.settings.model_dir)
        if seen == self.holder.fingerprint or seen == self._rejected:
            return False
        old = self.holder.version
        log.info("model_reload_started", current=old, path=seen[0])
        try:
            predictor = await asyncio.get_running_loop().run_in_executor(
                None, self._loader, self.settings, Path(seen[0])
            )
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old model serving
            self._rejected = seen
            self.metrics.model_reloads.labels(result="failed").inc()
            log.error(
                "model_reload_failed", current=old, path=seen[0], error=type(exc).__name__, detail=str(exc)[:300]
            )
            return False
        self._rejected = None
        self.holder.swap(predictor, seen)
        self.metrics.model_reloads.labels(result="ok").inc()
        log.info("model_reloaded", previous=old, version=predictor.version)
        return True
