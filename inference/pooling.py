"""Classify on the mean of the token states, the representation a sentence encoder was trained to produce.

Sentence encoders such as all-MiniLM-L6-v2 and all-mpnet-base-v2 are trained so that the masked mean of their
token states places a sentence by meaning ("pickpocketed" near "stolen"). A transformers sequence classifier
reads the first token instead (BERT through its pre-training pooler, MPNet through a new dense layer), which
that training never shaped: fine-tuning then has to build sentence meaning from Banking77's phrasings alone,
and wording Banking77 lacks lands on the wrong label. A logistic regression on the frozen mean-pooled features
of all-MiniLM-L6-v2 reached 92.8% test intent accuracy, above a first-token model fine-tuned on the quick
preset (90.4%), and named the label of 79% of the urgent reports written outside Banking77 (59%).

The checkpoint's ``config.json`` says which pooling it was trained with (``triage_pooling``); checkpoints
without the key read the first token, as they were trained.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["CONFIG_KEY", "MaskedMean", "apply_pooling"]

CONFIG_KEY = "triage_pooling"
"""The ``config.json`` key that records the pooling: ``mean`` or ``first``."""


class MaskedMean(torch.nn.Module):
    """The mean of the token states over the attention mask (padding excluded, so a batch's padding never
    changes a text's result). ``dense`` keeps BERT's pre-training pooler weights, unused, so that a checkpoint
    holds the same tensors as a first-token one and loads without missing-weight warnings."""

    def __init__(self, dense: torch.nn.Module | None = None) -> None:
        super().__init__()
        if dense is not None:
            self.dense = dense
        self.mask: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        assert self.mask is not None, "the encoder's pre-hook sets the mask before every pass"
        mask = self.mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def apply_pooling(model: Any, pooling: str | None = None) -> Any:
    """Make ``model`` (a transformers sequence classifier) classify on the masked mean when ``pooling`` (default:
    what its config records) is ``mean``; records the choice in its config, so ``save_pretrained`` keeps it.

    BERT-style models replace the pooler over the first token; models whose head reads the token states
    (MPNet, RoBERTa) get the mean as their only token. Either way the head's last linear layer, whose input the
    out-of-scope detector reads, sees one vector per text.
    """
    chosen = pooling or getattr(model.config, CONFIG_KEY, "first")
    setattr(model.config, CONFIG_KEY, chosen)
    if chosen != "mean" or any(isinstance(module, MaskedMean) for module in model.modules()):
        return model
    encoder = model.base_model
    pooler = getattr(encoder, "pooler", None)
    mean = MaskedMean(getattr(pooler, "dense", None))

    def keep_mask(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        if mask is None:
            raise ValueError("mean pooling needs the attention mask")
        mean.mask = mask

    encoder.register_forward_pre_hook(keep_mask, with_kwargs=True)
    if pooler is not None:
        encoder.pooler = mean
    else:
        model.classifier.register_forward_pre_hook(lambda _module, args: (mean(args[0]).unsqueeze(1), *args[1:]))
        model.add_module("mean_pooling", mean)
    return model
