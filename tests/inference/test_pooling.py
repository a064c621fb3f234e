"""Mean pooling classifies on the masked mean of the token states, for BERT- and MPNet-style heads alike, and a
checkpoint keeps the pooling it was trained with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, PretrainedConfig

from inference.pooling import CONFIG_KEY, MaskedMean, apply_pooling
from inference.torch_model import TorchModel
from tests.encoders import SMALL, SMALL_CONFIGS, SMALL_IDS


def _model(config: PretrainedConfig, pooling: str) -> Any:
    torch.manual_seed(0)
    return apply_pooling(AutoModelForSequenceClassification.from_config(config), pooling).eval()


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=SMALL_IDS)
def test_a_text_scores_the_same_alone_and_beside_a_longer_one(config: PretrainedConfig) -> None:
    served = TorchModel(_model(config, "mean"), torch.device("cpu"))
    short = np.array([[1, 7, 8, 2]])
    alone, alone_features = served.run(short, np.ones_like(short))
    ids = np.array([[1, 7, 8, 2, 0, 0, 0], [1, 9, 10, 11, 12, 13, 2]])
    mask = np.array([[1, 1, 1, 1, 0, 0, 0], [1] * 7])
    batched, batched_features = served.run(ids, mask)
    assert np.allclose(alone[0], batched[0], atol=1e-5)
    assert np.allclose(alone_features[0], batched_features[0], atol=1e-5)


def test_bert_features_are_the_masked_mean_of_the_encoder_states() -> None:
    model = _model(BertConfig(**SMALL), "mean")
    ids = torch.tensor([[1, 7, 8, 2, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    with torch.inference_mode():
        states = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    _, features = TorchModel(model, torch.device("cpu")).run(ids.numpy(), mask.numpy())
    assert np.allclose(features[0], states[0, :4].mean(dim=0).numpy(), atol=1e-5)


def test_first_token_pooling_is_left_as_transformers_builds_it() -> None:
    plain = AutoModelForSequenceClassification.from_config(BertConfig(**SMALL))
    pooler = plain.base_model.pooler
    assert apply_pooling(plain, "first").base_model.pooler is pooler
    assert getattr(plain.config, CONFIG_KEY) == "first"


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=SMALL_IDS)
def test_a_saved_checkpoint_loads_with_its_pooling(config: PretrainedConfig, tmp_path: Path) -> None:
    model = _model(config, "mean")
    model.save_pretrained(tmp_path, safe_serialization=True)
    assert json.loads((tmp_path / "config.json").read_text())[CONFIG_KEY] == "mean"
    ids = np.array([[1, 7, 8, 2, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    expected, _ = TorchModel(model, torch.device("cpu")).run(ids, mask)
    loaded, _ = TorchModel.load(tmp_path, "cpu", "fp32").run(ids, mask)
    assert np.allclose(expected, loaded, atol=1e-5)


def test_a_checkpoint_without_the_key_reads_the_first_token(tmp_path: Path) -> None:
    AutoModelForSequenceClassification.from_config(BertConfig(**SMALL)).save_pretrained(tmp_path)
    loaded = TorchModel.load(tmp_path, "cpu", "fp32")
    assert getattr(loaded.module.config, CONFIG_KEY) == "first"
    assert not isinstance(loaded.module.get_submodule("bert.pooler"), MaskedMean)


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=SMALL_IDS)
def test_applying_mean_pooling_again_changes_nothing(config: PretrainedConfig) -> None:
    model = _model(config, "mean")
    ids = np.array([[1, 7, 8, 2, 0]])
    mask = np.array([[1, 1, 1, 1, 0]])
    once, _ = TorchModel(model, torch.device("cpu")).run(ids, mask)
    twice, _ = TorchModel(apply_pooling(model, "mean"), torch.device("cpu")).run(ids, mask)
    assert np.allclose(once, twice, atol=1e-6)
