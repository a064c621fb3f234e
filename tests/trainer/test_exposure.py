"""Outlier exposure: which corpus lines are trained on, and that the loss moves their doubt off the High intents."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, load_taxonomy
from trainer.config import default_base_model
from trainer.data import Split, TicketData
from trainer.exposure import (
    CORPUS_QUANTILE,
    LOOKALIKE_QUANTILE,
    OUTLIER_LABEL,
    exposure_loss,
    far_from_labels,
    label_closeness,
    outlier_target,
    outlier_texts,
)
from trainer.halves import halves
from trainer.lookalikes import _VARIANTS, lookalike_texts
from trainer.offtopic import offtopic_texts

HIGH = PRIORITIES.index(Priority.HIGH)


def test_outliers_are_distinct_reproducible_and_keep_no_topic_list() -> None:
    texts = outlier_texts(None, seed=3)
    assert len(texts) == len(set(texts)) > 1500
    assert texts == outlier_texts(None, seed=3) and texts != outlier_texts(None, seed=4)
    assert outlier_texts(100, seed=3) == texts[:100]
    assert "buy low, sell high." in texts  # ChatterBot's money topic: left to the rule below, not to a list
    assert any(not text.isascii() for text in texts)  # other languages too


def test_lines_close_to_the_team_labels_are_left_out_by_the_base_model_features(banking77: TicketData) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = default_base_model()
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(base)
    labels = {"passcode_forgotten", "exchange_rate", "lost_or_stolen_card"}  # a small team's own taxonomy
    kept_rows = [(t, i) for t, i in zip(banking77.train.texts, banking77.train.intents, strict=True) if i in labels]
    team = Split([t for t, _ in kept_rows], [i for _, i in kept_rows])
    closeness = label_closeness(model, tokenizer, team, max_length=64)
    assert closeness.centroids.shape[0] == 3 and closeness.bar(CORPUS_QUANTILE) < closeness.bar(LOOKALIKE_QUANTILE)
    close = ["I forgot my password.", "it depends on the exchange rates."]
    far = ["What is the capital of France?", "Do you like jazz?", "Tell me a joke about cats"]
    kept, report = far_from_labels(model, tokenizer, closeness, close + far, CORPUS_QUANTILE, max_length=64)
    assert kept == far, report
    assert report["candidates"] == 5 and report["kept"] == 3 and 0 < report["close_bar"] < 1
    first, _ = far_from_labels(model, tokenizer, closeness, close + far, CORPUS_QUANTILE, max_length=64, count=2)
    assert first == far[:2]
    everything, _ = far_from_labels(model, tokenizer, closeness, close + far, 1.0, max_length=64)
    assert everything == close + far  # no line is as close as the team's most typical ticket: all kept


def test_lookalike_variants_share_no_template_and_orders_are_stable() -> None:
    texts = {variant: lookalike_texts(variant) for variant in _VARIANTS}  # type: ignore[arg-type]
    assert all(len(t) > 1000 for t in texts.values())
    assert set(_VARIANTS["exposure"][0]) == set(_VARIANTS["fitting"][0])  # every own topic on both sides
    assert not set(_VARIANTS["exposure"][0]) & set(_VARIANTS["reporting"][0])
    for one, other in [("exposure", "fitting"), ("exposure", "reporting"), ("fitting", "reporting")]:
        assert not set(texts[one]) & set(texts[other])
        templates = [{t for ts, _ in _VARIANTS[v][0].values() for t in ts} for v in (one, other)]
        assert not templates[0] & templates[1]
    assert lookalike_texts("fitting", 50, seed=1) == lookalike_texts("fitting", seed=1)[:50]
    assert set(lookalike_texts("fitting", seed=2)) == set(texts["fitting"])


def test_no_lookalike_disputes_a_charge_on_the_customers_card() -> None:
    """A bank's customers report a shop's double or unexpected charge to their bank: it is a ticket, not off-topic."""
    dispute = re.compile(r"charged (me|my card|twice)|took payment|payment twice|renewed without|didn't make")
    for variant in _VARIANTS:
        found = [text for text in lookalike_texts(variant) if dispute.search(text)]  # type: ignore[arg-type]
        assert not found, f"{variant}: {found[:3]}"


def test_halves_are_disjoint_and_stable() -> None:
    texts = lookalike_texts("reporting")
    first, second = halves(texts)
    assert not set(first) & set(second) and len(first) + len(second) == len(texts)
    assert 0.4 < len(first) / len(texts) < 0.6 and halves(list(reversed(texts)))[0] == first[::-1]


def test_no_outlier_is_a_text_that_tunes_or_reports_the_rule() -> None:
    generated = {text for seed in (1, 2) for _, text in offtopic_texts(800, seed=seed)}
    outliers = set(outlier_texts(5000, seed=42))
    assert not generated & outliers
    assert not (set(lookalike_texts("reporting")) | set(lookalike_texts("fitting"))) & outliers


def test_target_spreads_over_the_intents_that_do_not_page() -> None:
    taxonomy = load_taxonomy()
    target = outlier_target(taxonomy)
    high = taxonomy.priority_matrix[:, HIGH] == 1
    assert high.any() and np.all(target[high] == 0)
    assert np.isclose(target.sum(), 1.0) and np.allclose(target[~high], 1.0 / (~high).sum())


def test_intent_rows_get_plain_cross_entropy() -> None:
    target = outlier_target(load_taxonomy())
    logits = torch.randn(4, target.size)
    labels = torch.tensor([3, 10, 0, 76])
    loss = exposure_loss(target, weight=0.5, label_smoothing=0.1)(SimpleNamespace(logits=logits), labels)
    assert torch.isclose(loss, F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_training_on_outlier_rows_lowers_their_p_high_and_leaves_intent_rows_alone() -> None:
    taxonomy = load_taxonomy()
    target = outlier_target(taxonomy)
    high = torch.from_numpy(taxonomy.priority_matrix[:, HIGH])
    logits = torch.zeros(3, target.size)
    logits[:, high == 1] = 3.0  # every row starts sure it is a High intent
    logits.requires_grad_(True)
    labels = torch.tensor([OUTLIER_LABEL, OUTLIER_LABEL, int(torch.nonzero(high)[0])])
    loss_fn = exposure_loss(target, weight=1.0, label_smoothing=0.0)
    before = torch.softmax(logits.detach(), dim=-1) @ high
    optimiser = torch.optim.SGD([logits], lr=50.0)
    for _ in range(50):
        optimiser.zero_grad()
        loss_fn(SimpleNamespace(logits=logits), labels).backward()
        optimiser.step()
    after = torch.softmax(logits.detach(), dim=-1) @ high
    assert after[0] < 0.05 < before[0] and after[1] < 0.05
    assert after[2] > 0.95  # the labelled High ticket stays High
