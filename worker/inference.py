"""What the worker classifies with: the ``Predictor`` protocol, the checkpoint loader and a no-op stand-in."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from schemas.enums import Category, Priority
from schemas.messages import Confidence, IntentScore, Triage
from worker.settings import WorkerSettings

__all__ = ["NOOP_VERSION", "NoopPredictor", "Predictor", "configure_torch", "load_predictor"]

NOOP_VERSION = "noop"


@runtime_checkable
class Predictor(Protocol):
    """Anything that turns ticket texts into triage results; the worker never needs more."""

    version: str

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """One ``Triage`` per text, in order."""
        ...


class NoopPredictor:
    """A constant answer without a model, so benchmarks can measure the pipeline's own ceiling."""

    version = NOOP_VERSION

    def __init__(self) -> None:
        self._answer = Triage(
            category=Category.GENERAL_INQUIRY,
            priority=Priority.LOW,
            intent=NOOP_VERSION,
            confidence=Confidence(category=1.0, intent=1.0, priority=1.0),
            top_intents=[IntentScore(intent=NOOP_VERSION, probability=1.0)],
            needs_review=False,
            model_version=NOOP_VERSION,
        )

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """The same answer for every text (shared: the worker never mutates results)."""
        return [self._answer] * len(texts)


def configure_torch(settings: WorkerSettings) -> None:
    """Size torch's thread pool once per process, before the first forward pass."""
    import torch

    torch.set_num_threads(settings.threads)


def load_predictor(settings: WorkerSettings, checkpoint: Path | None = None) -> Predictor:
    """Build the configured predictor.

    Args:
        settings: Worker settings (backend, device, batch size, threshold overrides).
        checkpoint: A resolved checkpoint folder; default ``settings.model_dir``.

    Raises:
        CheckpointError: The checkpoint is missing, incomplete or cannot be loaded; says what to run.
    """
    if settings.model_backend == "noop":
        return NoopPredictor()
    if settings.model_process:
        from worker.model_process import ProcessPredictor

        return ProcessPredictor(settings, checkpoint)
    from transformers.utils import logging as hf_logging

    from triage.checkpoint import resolve_checkpoint
    from triage.classifier import Classifier
    from triage.decision import Thresholds

    hf_logging.disable_progress_bar()  # a progress bar per load would break the worker's JSON log lines
    folder = resolve_checkpoint(checkpoint or settings.model_dir)
    overrides = settings.thresholds.model_dump(exclude_none=True)
    thresholds = None
    if overrides:
        thresholds = Thresholds.load(folder / "thresholds.json").model_copy(update=overrides)
    return Classifier.load(
        folder,
        device=settings.device,
        batch_size=settings.batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        thresholds=thresholds,
        backend=settings.model_backend,
    )
