"""The torch path reads one feature vector per text from the head, whatever the encoder family's head looks like."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, MPNetConfig, PretrainedConfig

from inference.checkpoint import CheckpointError
from inference.torch_model import TorchModel, classification_head

_SMALL: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100,
    "num_labels": 5,
}


@pytest.mark.parametrize("config", [BertConfig(**_SMALL), MPNetConfig(**_SMALL)], ids=["bert", "mpnet"])
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
    module = AutoModelForSequenceClassification.from_config(BertConfig(**_SMALL))
    module.classifier = torch.nn.Sequential(torch.nn.Linear(32, 5), torch.nn.Softmax(dim=-1), torch.nn.Linear(5, 3))
    with pytest.raises(CheckpointError, match="linear layer to its labels"):
        classification_head(module)
