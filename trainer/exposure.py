"""Outlier exposure: public chit-chat the model is taught is not a banking ticket (Hendrycks et al., ICLR 2019).

Fine-tuned on Banking77 alone, the model has never seen anything else, so "hi" or a trivia question
lands on some intent, and a risk-averse High threshold turns such guesses into pages. Training also on
text that is surely not a banking ticket, with a target that spreads it over the intents that do not page,
teaches the model that such text gets low logits for every intent, with its doubt on intents that do not
page. On the quick preset that cut the off-topic texts paged from 5.4% to 1.1% (``triage evaluate``). It
also moves off-topic features towards the intents' centre, where the Mahalanobis detector stops seeing them
(AUROC 0.77) while the energy of the logits sees them well (0.99): which detector serves is decided after
training (``trainer.scope``).

The outliers come from ChatterBot's dialog corpus (``chatterbot-corpus`` on PyPI, BSD licence): trivia,
small talk, coding, science, films and more, in many languages. Its money, tech-support and computers
topics are left out: they sit next to real banking and app tickets. None of these texts is in any set that
tunes or reports the out-of-scope rule (the generator in ``trainer.offtopic``, CLINC150).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np
import yaml

from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, Taxonomy

__all__ = ["EXCLUDED_TOPICS", "OUTLIER_LABEL", "exposure_loss", "outlier_target", "outlier_texts"]

EXCLUDED_TOPICS = frozenset({"money", "tech_support", "computers"})
"""ChatterBot topics near banking or app tickets: trained as outliers, they would teach that real tickets are too."""
OUTLIER_LABEL = -1
"""The label of an outlier example in a training batch (intents are 0..76)."""
_OTHER_LANGUAGES = 400
"""Non-English lines sampled across the corpus's other languages: a ticket bus gets those too."""
_SHORTEST = 3
"""Characters in the shortest line kept: "?" or "k" says nothing about a topic (and the generator has them)."""


def outlier_texts(count: int, seed: int) -> list[str]:
    """Up to ``count`` distinct corpus lines, English first then other languages, reproducible from ``seed``.

    Every line of a conversation is used: questions and answers alike are text that is not a ticket.
    """
    root = resources.files("chatterbot_corpus") / "data"
    english: set[str] = set()
    foreign: set[str] = set()
    for language in sorted(root.iterdir(), key=lambda p: p.name):
        if not language.is_dir():
            continue
        lines = english if language.name == "english" else foreign
        for topic in sorted(language.iterdir(), key=lambda p: p.name):
            if topic.name.endswith(".yml") and topic.name.removesuffix(".yml") not in EXCLUDED_TOPICS:
                lines.update(_lines(yaml.safe_load(topic.read_text(encoding="utf-8"))))
    rng = random.Random(seed)
    chosen = sorted(english)
    rng.shuffle(chosen)
    others = sorted(foreign - english)
    rng.shuffle(others)
    return (chosen + others[:_OTHER_LANGUAGES])[:count]


def outlier_target(taxonomy: Taxonomy) -> np.ndarray:
    """Uniform over the intents that do not page: an off-topic text's doubt must not add up to P(High)."""
    quiet = taxonomy.priority_matrix[:, PRIORITIES.index(Priority.HIGH)] == 0
    return (quiet / quiet.sum()).astype(np.float32)


def exposure_loss(target: np.ndarray, weight: float, label_smoothing: float) -> Callable[..., Any]:
    """A ``Trainer`` ``compute_loss_func``: cross-entropy on intents plus ``weight`` × cross-entropy of
    outlier rows (label ``OUTLIER_LABEL``) against ``target``; batches hold both kinds.
    """
    import torch
    import torch.nn.functional as F

    goal = torch.from_numpy(target)

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs.logits.float()
        outlier = labels == OUTLIER_LABEL
        total = logits.new_zeros(())
        if (~outlier).any():
            total = total + F.cross_entropy(logits[~outlier], labels[~outlier], label_smoothing=label_smoothing)
        if outlier.any():
            log_probs = F.log_softmax(logits[outlier], dim=-1)
            total = total - weight * (log_probs @ goal.to(log_probs.device)).mean()
        return total

    return loss


def _lines(document: Any) -> set[str]:
    """Every text line of one ChatterBot YAML file, short ones aside."""
    out: set[str] = set()
    for conversation in (document or {}).get("conversations", []):
        for line in conversation:
            if isinstance(line, str) and len(line.strip()) >= _SHORTEST:
                out.add(line.strip())
    return out
