"""The no-op predictor: a constant answer without a model, so benchmarks can measure the pipeline's own ceiling."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.enums import Priority
from schemas.messages import Confidence, IntentScore, Triage
from schemas.taxonomy import load_taxonomy

__all__ = ["NOOP_VERSION", "NoopPredictor"]

NOOP_VERSION = "noop"


class NoopPredictor:
    """Every text gets the default taxonomy's out-of-scope category, Low, unreviewed."""

    version = NOOP_VERSION

    def __init__(self) -> None:
        self._answer = Triage(
            category=load_taxonomy().out_of_scope_category, priority=Priority.LOW, intent=NOOP_VERSION,
            confidence=Confidence(category=1.0, intent=1.0, priority=1.0),
            top_intents=[IntentScore(intent=NOOP_VERSION, probability=1.0)], needs_review=False,
            model_version=NOOP_VERSION)

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """The same answer for every text (shared: the worker never mutates results)."""
        return [self._answer] * len(texts)
