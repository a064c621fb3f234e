"""Randomly initialised encoders small enough to build in milliseconds, for tests of model plumbing."""

from __future__ import annotations

from typing import Any

from transformers import BertConfig, MPNetConfig

__all__ = ["SMALL", "SMALL_CONFIGS", "SMALL_IDS"]

SMALL: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100,
    "num_labels": 5,
}
"""One layer, 32 wide, five labels."""
SMALL_CONFIGS = [BertConfig(**SMALL), MPNetConfig(**SMALL)]
"""A BERT-style head (pooler + linear) and an MPNet-style one (dense + linear over the first token)."""
SMALL_IDS = ["bert", "mpnet"]
