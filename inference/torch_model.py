"""The torch serving path: the checkpoint's safetensors weights through transformers.

Its own module so that only a process that serves (or trains) with torch imports torch and transformers:
about 17 s of start-up on 2 cores, which an ONNX model process never pays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from inference.checkpoint import CheckpointError
from inference.pooling import apply_pooling

__all__ = ["TorchModel", "classification_head", "device_name", "half_precision", "load_module", "pick_device"]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def half_precision() -> Literal["bf16", "fp16"]:
    """bf16 where the GPU supports it (same range as fp32), else fp16."""
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device))


def classification_head(model: torch.nn.Module) -> torch.nn.Linear:
    """The classification head's last linear layer: the scope detector reads its input (one feature vector per
    text) and its weight and bias. BERT-style heads are that layer alone; MPNet- and RoBERTa-style heads put a
    dense layer on the first token before it, whose input would be every token's hidden state."""
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Module):
        raise CheckpointError(f"{type(model).__name__} has no `classifier` head to read features from")
    linears = [layer for layer in head.modules() if isinstance(layer, torch.nn.Linear)]
    labels = getattr(getattr(model, "config", None), "num_labels", None)
    if not linears or linears[-1].out_features != labels:
        raise CheckpointError(f"{type(model).__name__}'s `classifier` does not end in a linear layer to its labels")
    return linears[-1]


def load_module(folder: Path | str, precision: str | None = None) -> torch.nn.Module:
    """A checkpoint's sequence classifier (safetensors only, never remote code) with the pooling it was trained
    with (``inference.pooling``); ``precision`` None keeps the file's dtype."""
    dtype = {} if precision is None else {"dtype": _DTYPES[precision]}
    module = AutoModelForSequenceClassification.from_pretrained(
        folder, use_safetensors=True, trust_remote_code=False, **dtype
    )
    return apply_pooling(module)


class TorchModel:
    """A sequence classifier with the ONNX export's call shape: ids + mask in, logits and head features out."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.module = module.eval()
        self.device = device
        self._features: list[torch.Tensor] = []
        classification_head(module).register_forward_hook(lambda _module, args, _out: self._features.append(args[0]))

    @classmethod
    def load(cls, folder: Path, device: str, precision: str, threads: int | None = None) -> TorchModel:
        """Safetensors weights only, never remote code; ``threads`` sets torch's intra-op threads when given."""
        if threads:
            torch.set_num_threads(threads)
        hf_logging.disable_progress_bar()  # a progress bar per load would break the worker's JSON log lines
        target = torch.device(device)
        return cls(load_module(folder, precision).to(target), target)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._features.clear()
        with torch.inference_mode():
            logits = self.module(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(attention_mask).to(self.device),
            ).logits
        return logits.float().cpu().numpy(), self._features[0].float().cpu().numpy()
