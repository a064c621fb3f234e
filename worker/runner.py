"""Run the worker process: structlog logging, fail-fast checks, a bounded graceful shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Any, NoReturn, cast

import faust
import structlog

from inference.logging import configure_logging
from worker.settings import WorkerSettings
from worker.transport import TriageApp

__all__ = ["EXIT_GRACE_EXPIRED", "EXIT_SETUP", "TriageWorker", "main", "run_worker"]

EXIT_SETUP = 2  # invalid settings or no usable checkpoint: a restart alone cannot fix it
EXIT_GRACE_EXPIRED = 70

log = structlog.get_logger(__name__)


class TriageWorker(faust.Worker):
    """Faust's worker with the project's JSON logs and a hard limit on how long shutdown may take.

    On SIGTERM/SIGINT: a watchdog thread starts, the batches in flight are finished and their offsets
    committed, Faust stops its services, and the process exits with ``os._exit`` as soon as Faust returns
    (no interpreter teardown of torch and Kafka threads). Whatever state the process is in when the grace
    period ends, the watchdog exits it with ``EXIT_GRACE_EXPIRED``.
    """

    def __init__(self, app: faust.App, *services: Any, **kwargs: Any) -> None:
        super().__init__(app, *services, **kwargs)
        self.spinner = None  # terminal escape codes would land in the JSON log stream
        self._draining = False

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        configure_logging(cast(TriageApp, self.app).triage_settings.log_level)

    async def stop(self) -> None:
        if not self._stopped.is_set() and not self._draining:
            self._draining = True
            app = cast(TriageApp, self.app)
            grace = app.triage_settings.shutdown_grace_s
            log.info("worker_stopping", grace_s=grace)
            watchdog = threading.Timer(grace, _grace_expired, args=(grace,))
            watchdog.daemon = True
            watchdog.start()
            if not self.crash_reason:
                await app.drain()
                await app.consumer.commit()
        await super().stop()

    def execute_from_commandline(self) -> NoReturn:
        """Run Faust until it returns, then exit at once with its exit code."""
        code = 1
        try:
            super().execute_from_commandline()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            _exit(code)


def _exit(code: int) -> NoReturn:
    """Flush what is buffered and leave without interpreter teardown (torch and Kafka threads take seconds)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _grace_expired(grace: float) -> None:
    """In-flight work did not finish in time: exit without committing it (it is replayed on restart)."""
    log.error("shutdown_grace_expired", grace_s=grace)
    _exit(EXIT_GRACE_EXPIRED)


def run_worker(settings: WorkerSettings) -> NoReturn:
    """Start the worker and block until it stops (SIGTERM/SIGINT) or crashes.

    Raises:
        CheckpointError: ``model_dir`` holds no usable checkpoint (checked before connecting to Kafka).
    """
    from worker.app import create_app

    if settings.model_backend != "noop":
        from inference.checkpoint import resolve_checkpoint

        resolve_checkpoint(settings.model_dir)
    app = create_app(settings)
    log.info("worker_starting", brokers=settings.brokers, group_id=settings.group_id,
             incoming=settings.topics.incoming, backend=settings.model_backend, model_dir=str(settings.model_dir),
             batch_size=settings.batch_size, batch_wait_ms=settings.batch_wait_ms, web_port=settings.web_port)
    worker = TriageWorker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def main() -> NoReturn:
    """The one entry point (``python -m worker`` and ``triage worker``): settings from ``TRIAGE_*``."""
    from pydantic import ValidationError

    from inference.checkpoint import CheckpointError

    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        print(f"invalid TRIAGE_* worker settings:\n{exc}", file=sys.stderr)
        _exit(EXIT_SETUP)
    configure_logging(settings.log_level)
    try:
        run_worker(settings)
    except CheckpointError as exc:
        log.error("model_missing", detail=str(exc))
        _exit(EXIT_SETUP)
