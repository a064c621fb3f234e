"""Run the feedback process: JSON logs, the /metrics endpoint, Faust until SIGTERM."""

from __future__ import annotations

import logging
from typing import Any

import faust
import structlog
from prometheus_client import start_http_server

from feedback.app import create_app
from feedback.settings import FeedbackSettings
from inference.logging import configure_logging

__all__ = ["main"]

log = structlog.get_logger(__name__)


class FeedbackWorker(faust.Worker):
    """Faust's worker with the project's JSON logs (no spinner in the log stream)."""

    def __init__(self, app: faust.App, *services: Any, log_level: str, **kwargs: Any) -> None:
        super().__init__(app, *services, **kwargs)
        self.spinner = None
        self._log_level = log_level

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        configure_logging(self._log_level)


def main() -> None:
    """Build everything from ``TRIAGE_*`` settings and run until stopped."""
    settings = FeedbackSettings()
    configure_logging(settings.log_level)
    app, processor = create_app(settings)
    options = settings.feedback
    start_http_server(options.web_port, options.web_host, registry=processor.metrics.registry)
    log.info("feedback_starting", feedback_topic=settings.topics.feedback, enriched_topic=settings.topics.enriched,
             metrics_port=options.web_port, journal=str(processor.journal.path))
    FeedbackWorker(app, log_level=settings.log_level, loglevel=settings.log_level).execute_from_commandline()
