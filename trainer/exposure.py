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
small talk, money, tech support, science, films and more, in many languages; and from look-alikes
(``trainer.lookalikes``): other businesses' requests and everyday questions that borrow banking words (a phone
plan's balance, a gym card, a game account's password), which otherwise land on banking intents and page. Some
corpus lines are the team's own kind of text (its money lines next to banking tickets, its tech-support lines
next to an IT desk's), and training them as outliers would teach that real tickets are off-topic. So no topic
list is kept by hand: ``far_from_labels`` leaves out every line that the base model places as close to one of
the team's labels as the team's tickets sit to their own (``CORPUS_QUANTILE``; for look-alikes, which are
written to be close, ``LOOKALIKE_QUANTILE``). None of these texts is in any set that fits or reports the
out-of-scope rule (the generator in ``trainer.offtopic``, CLINC150, the fitting and the reporting look-alikes,
whose templates the exposure ones do not share).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import yaml

from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, Taxonomy
from trainer.data import Split
from trainer.lookalikes import lookalike_texts

__all__ = [
    "CORPUS_QUANTILE",
    "LOOKALIKE_QUANTILE",
    "OUTLIER_LABEL",
    "LabelCloseness",
    "Outliers",
    "exposure_loss",
    "far_from_labels",
    "label_closeness",
    "exposure_texts",
    "outlier_target",
    "outlier_texts",
]

CORPUS_QUANTILE = 0.01
"""A corpus line is the team's kind of text when it is as close to a label as all but the 1% least typical of the
team's tickets are to their own (at 5%, the bar sat above nearly every corpus line and left 4 of 2,267 out)."""
LOOKALIKE_QUANTILE = 0.5
"""A look-alike, written to share the labels' words, is left out only when it is as close to a label as the
team's typical ticket is to its own: then it is the team's request, whatever business the template meant."""
_CENTROID_EXAMPLES = 40
"""Training tickets per label that define its centroid and the closeness bar (the first ones in the split)."""
OUTLIER_LABEL = -1
"""The label of an outlier example in a training batch (intents are 0..76)."""
_OTHER_LANGUAGES = 400
"""Non-English lines sampled across the corpus's other languages: a ticket bus gets those too."""
_SHORTEST = 3
"""Characters in the shortest line kept: "?" or "k" says nothing about a topic (and the generator has them)."""


def exposure_texts(
    model: Any, tokenizer: Any, train: Split, max_length: int, seed: int
) -> tuple[Outliers, dict[str, Any]]:
    """Every outlier to train on: a quarter as many corpus lines as training tickets, and up to an eighth as many
    of the exposure look-alikes (no template of theirs fits the page rule), each far from the team's
    labels.

    Args:
        model: The base model, before fine-tuning: its features judge closeness.

    Returns:
        The outlier texts and a report per source for the log.
    """
    closeness = label_closeness(model, tokenizer, train, max_length)
    corpus, corpus_report = far_from_labels(model, tokenizer, closeness, outlier_texts(None, seed), CORPUS_QUANTILE,
                                            max_length, count=len(train) // 4)
    lookalikes, lookalike_report = far_from_labels(model, tokenizer, closeness, lookalike_texts("exposure", seed=seed),
                                                   LOOKALIKE_QUANTILE,
                                                   max_length, count=len(train) // 8)
    return Outliers(corpus, lookalikes), {"corpus": corpus_report, "lookalikes": lookalike_report}


@dataclass(frozen=True)
class Outliers:
    """The exposure texts by source: corpus lines are small talk that can surround a request; look-alikes are
    other businesses' requests, which never do."""

    corpus: list[str]
    lookalikes: list[str]

    @property
    def texts(self) -> list[str]:
        return self.corpus + self.lookalikes


def outlier_texts(count: int | None, seed: int) -> list[str]:
    """Up to ``count`` (None: all) distinct corpus lines, English first then other languages, reproducible
    from ``seed``.

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
            if topic.name.endswith(".yml"):
                lines.update(_lines(yaml.safe_load(topic.read_text(encoding="utf-8"))))
    rng = random.Random(seed)
    chosen = sorted(english)
    rng.shuffle(chosen)
    others = sorted(foreign - english)
    rng.shuffle(others)
    return (chosen + others[:_OTHER_LANGUAGES])[:count]


@dataclass(frozen=True)
class LabelCloseness:
    """How close the team's own tickets sit to their labels, by the base model's features, to judge other text by.

    ``centroids``: each label's mean normalised feature over its first ``_CENTROID_EXAMPLES`` training tickets;
    ``own``: those tickets' cosine to their own label's centroid.
    """

    centroids: np.ndarray
    own: np.ndarray

    def bar(self, quantile: float) -> float:
        """The cosine to a label that all but ``quantile`` of the team's tickets reach to their own label."""
        return float(np.quantile(self.own, quantile))


def label_closeness(model: Any, tokenizer: Any, train: Split, max_length: int) -> LabelCloseness:
    """Centroids of the team's labels and their tickets' closeness to them (``model`` before fine-tuning)."""
    by_label: dict[str, list[str]] = {}
    for text, label in zip(train.texts, train.intents, strict=True):
        group = by_label.setdefault(label, [])
        if len(group) < _CENTROID_EXAMPLES:
            group.append(text)
    labels = sorted(by_label)
    tickets = _features(model, tokenizer, [t for name in labels for t in by_label[name]], max_length)
    owner = np.repeat(np.arange(len(labels)), [len(by_label[name]) for name in labels])
    centroids = np.stack([tickets[owner == i].mean(axis=0) for i in range(len(labels))])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return LabelCloseness(centroids, (tickets * centroids[owner]).sum(axis=1))


def far_from_labels(
    model: Any,
    tokenizer: Any,
    closeness: LabelCloseness,
    candidates: list[str],
    quantile: float,
    max_length: int,
    count: int | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The first ``count`` (None: all) candidates that are not as close to any label as the team's own tickets
    are, in order: a candidate whose cosine to some label's centroid reaches ``closeness.bar(quantile)`` is the
    team's kind of text and is left out.

    Returns:
        The kept lines and a report (candidates looked at, kept, the bar) for the log.
    """
    bar = closeness.bar(quantile)
    kept: list[str] = []
    looked = 0
    while looked < len(candidates) and (count is None or len(kept) < count):
        chunk = candidates[looked : looked + 128]
        closest = (_features(model, tokenizer, chunk, max_length) @ closeness.centroids.T).max(axis=1)
        kept += [text for text, score in zip(chunk, closest, strict=True) if score < bar]
        looked += len(chunk)
    kept = kept[:count]
    return kept, {"candidates": looked, "kept": len(kept), "close_bar": round(bar, 4)}


def _features(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """L2-normalised mean-pooled encoder features (how sentence-transformers embeds with MiniLM), in the order of
    ``texts``; batched by length so a short line is not padded to a long one's size."""
    import torch

    encoder = model.base_model
    device = next(encoder.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = []
    with torch.inference_mode():
        for start in range(0, len(order), 128):
            batch = tokenizer([texts[i] for i in order[start : start + 128]], truncation=True, max_length=max_length,
                              padding=True, return_tensors="pt").to(device)
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
    if not out:
        return np.zeros((0, 1), dtype=np.float32)
    batched = np.concatenate(out)
    features = np.empty_like(batched)
    features[order] = batched
    return features


def outlier_target(taxonomy: Taxonomy) -> np.ndarray:
    """Uniform over the labels that do not page: an off-topic text's doubt must not add up to P(High)."""
    quiet = taxonomy.priority_matrix[:, PRIORITIES.index(Priority.HIGH)] == 0
    if not quiet.any():  # every label pages: nothing to spread onto but all of them
        quiet = ~quiet
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
