"""The torch path reads one feature vector per text from the head, whatever the encoder family's head looks like."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, PretrainedConfig

from inference.checkpoint import CheckpointError
from inference.torch_model import TorchModel, classification_head
from tests.encoders import SMALL, SMALL_CONFIGS, SMALL_IDS


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=SMALL_IDS)
def test_features_are_the_input_of_the_last_linear_layer_to_the_labels(config: PretrainedConfig) -> None:
    torch.manual_seed(0)
    module = AutoModelForSequenceClassification.from_config(config)
    head = classification_head(module)
    ids = torch.randint(5, 100, (3, 7))
    logits, features = TorchModel(module, torch.device("cpu")).run(ids.numpy(), torch.ones_like(ids).numpy())
    assert features.shape == (3, 32) and logits.shape == (3, 5)
    recomputed = features @ head.weight.detach().numpy().T + head.bias.detach().numpy()
    assert torch.allclose(torch.from_numpy(recomputed), torch.from_numpy(logits), atol=1e-5)


def test_a_head_that_does_not_end_in_the_labels_is_refused() -> None:
    module = AutoModelForSequenceClassification.from_config(BertConfig(**SMALL))
    module.classifier = torch.nn.Sequential(torch.nn.Linear(32, 5), torch.nn.Softmax(dim=-1), torch.nn.Linear(5, 3))
    with pytest.raises(CheckpointError, match="linear layer to its labels"):
        classification_head(module)
