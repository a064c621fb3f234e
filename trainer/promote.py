"""The promotion gate: a candidate checkpoint replaces ``latest`` only when it is not worse than the current one.

Both are scored side by side on the same data (the held-out feedback and the base test split): the candidate may
not lose category accuracy on either (beyond ``tolerance``), and its High recall must stay at or above the bar on
each. The switch is one ``rename`` of the link, which the worker's hot reload picks up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import structlog

from inference.checkpoint import point_latest, resolve_checkpoint
from schemas.enums import Priority
from trainer.data import Split

__all__ = ["Decision", "Score", "decide", "promote", "score"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Score:
    """One checkpoint on one data set."""

    n: int
    category_accuracy: float
    label_accuracy: float
    high_recall: float | None
    """None when the set has no High ticket."""
    high_n: int = 0
    """High tickets in the set: the recall of a handful says little (``decide``'s ``min_high``)."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, dict[str, Score]] = field(default_factory=dict)
    """Per data set: ``{"candidate": Score, "current": Score}``."""


def score(checkpoint: Path, data: Split) -> Score:
    """Category and label accuracy and High recall of a checkpoint as the worker serves it (backend auto)."""
    from inference.classifier import Classifier

    classifier = Classifier.load(checkpoint, backend="auto", batch_size=128)
    taxonomy = classifier.taxonomy
    triages = classifier.predict(data.texts)
    truth = [taxonomy.rule(label) for label in data.intents]
    high = [t.priority == Priority.HIGH for t in truth]
    paged = [tr.priority == Priority.HIGH for tr in triages]
    n_high = sum(high)
    return Score(
        n=len(data),
        category_accuracy=sum(tr.category == t.category for tr, t in zip(triages, truth, strict=True)) / len(data),
        label_accuracy=sum(tr.intent == t.intent for tr, t in zip(triages, truth, strict=True)) / len(data),
        high_recall=sum(p and h for p, h in zip(paged, high, strict=True)) / n_high if n_high else None,
        high_n=n_high,
    )


def decide(scores: dict[str, dict[str, Score]], high_recall_bar: float, tolerance: float,
           min_high: int = 20) -> Decision:
    """Promote only when on every set the candidate keeps category accuracy and High recall ≥ the bar (judged on
    sets with at least ``min_high`` High tickets: on five, one miss is 20 points)."""
    reasons = []
    for name, pair in scores.items():
        candidate, current = pair["candidate"], pair["current"]
        if candidate.category_accuracy < current.category_accuracy - tolerance:
            reasons.append(f"{name}: category accuracy {candidate.category_accuracy:.2%} is below the current "
                           f"{current.category_accuracy:.2%}" + (f" (tolerance {tolerance:.2%})" if tolerance else ""))
        judged = candidate.high_recall is not None and candidate.high_n >= min_high
        if judged and candidate.high_recall is not None and candidate.high_recall < high_recall_bar:
            reasons.append(f"{name}: High recall {candidate.high_recall:.2%} is below the bar {high_recall_bar:.2%}")
    return Decision(not reasons, reasons, scores)


def promote(candidate: Path, latest: Path, sets: dict[str, Split], high_recall_bar: float,
            tolerance: float = 0.0, min_high: int = 20) -> Decision:
    """Score, decide, and when the candidate passes point ``latest`` at it (atomically).

    Args:
        candidate: A checkpoint folder beside the one ``latest`` points at (same models root).
        latest: The ``latest`` link the worker serves.
        sets: Named labelled sets both are scored on (held-out feedback, the base test split).
    """
    new, old = resolve_checkpoint(candidate), resolve_checkpoint(latest)
    if new == old:
        return Decision(False, [f"{new.name} is already the current checkpoint"])
    if new.parent != latest.parent.resolve():
        return Decision(False, [f"{new} is not under {latest.parent}: train it with --output {latest.parent}"])
    scores = {name: {"candidate": score(new, split), "current": score(old, split)}
              for name, split in sets.items() if len(split)}
    decision = decide(scores, high_recall_bar, tolerance, min_high)
    if decision.promote:
        point_latest(latest.parent, new.name)
    log.info("promotion_decided", candidate=new.name, current=old.name, promoted=decision.promote,
             reasons=decision.reasons)
    return decision
