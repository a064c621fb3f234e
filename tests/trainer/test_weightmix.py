"""The weight mix averages the encoder only, keeps the share its score rates best, and leaves the model at it."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig

from tests.encoders import SMALL
from trainer.weightmix import MIXES, choose_mix, mixed_state


def _pair() -> tuple[Any, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    base = AutoModel.from_config(BertConfig(**SMALL)).state_dict()
    torch.manual_seed(1)
    return AutoModelForSequenceClassification.from_config(BertConfig(**SMALL)), base


def test_the_encoder_is_averaged_and_the_head_kept() -> None:
    model, base = _pair()
    fine = model.state_dict()
    half = mixed_state(fine, base, "bert.", 0.5)
    weight = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.allclose(half[weight], (fine[weight] + base[weight.removeprefix("bert.")]) / 2)
    assert torch.equal(half["classifier.weight"], fine["classifier.weight"])
    assert torch.equal(mixed_state(fine, base, "bert.", 0.0)[weight], base[weight.removeprefix("bert.")])
    ids = "bert.embeddings.position_ids"
    if ids in fine:  # integer buffers are never averaged
        assert torch.equal(half[ids], fine[ids])


def test_the_best_scored_share_is_kept_and_left_on_the_model() -> None:
    model, base = _pair()
    fine = {key: value.clone() for key, value in model.state_dict().items()}
    weight = "bert.encoder.layer.0.output.dense.weight"
    target = mixed_state(fine, base, "bert.", 0.7)[weight]

    def closeness() -> tuple[float, torch.Tensor]:
        current = model.state_dict()[weight].clone()
        return -float((current - target).abs().sum()), current

    share, scores, computed = choose_mix(model, base, closeness)
    assert share == 0.7 and set(scores) == set(MIXES)
    assert torch.allclose(model.state_dict()[weight], target)
    assert torch.allclose(computed, target), "what the score computed is the kept share's, not the last tried"
    assert torch.equal(model.state_dict()["classifier.weight"], fine["classifier.weight"])


def test_a_tie_keeps_more_of_the_fine_tuned_weights() -> None:
    model, base = _pair()
    share, _, _ = choose_mix(model, base, lambda: (0.5, None))
    assert share == pytest.approx(max(MIXES))
