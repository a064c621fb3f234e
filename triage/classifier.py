"""The one inference core: checkpoint in, ``Triage`` out. Used by the worker, CLI, evaluation and benches."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from schemas.messages import Triage
from schemas.taxonomy import Taxonomy, load_taxonomy
from triage.checkpoint import CheckpointError, read_manifest, resolve_checkpoint
from triage.decision import Thresholds, decide

__all__ = ["Classifier", "pick_device"]


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Classifier:
    """A fine-tuned intent model plus the taxonomy and thresholds saved with it."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        taxonomy: Taxonomy,
        thresholds: Thresholds,
        version: str,
        *,
        device: torch.device,
        max_length: int = 64,
        batch_size: int = 32,
        bucket_by_length: bool = True,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.taxonomy = taxonomy
        self.thresholds = thresholds
        self.version = version
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        device: str | None = None,
        batch_size: int = 32,
        bucket_by_length: bool = True,
        thresholds: Thresholds | None = None,
    ) -> Classifier:
        """Load a checkpoint folder (or ``latest``); safetensors only, never remote code.

        Args:
            path: Checkpoint folder or a link to one.
            device: ``cpu``/``cuda``/...; default picks CUDA when available.
            batch_size: Largest forward pass; bigger inputs are split.
            bucket_by_length: Sort texts by length before batching to cut padding.
            thresholds: Override the thresholds stored with the checkpoint.
        """
        folder = resolve_checkpoint(path)
        manifest = read_manifest(folder)
        torch_device = pick_device(device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, use_safetensors=True, trust_remote_code=False
            ).to(torch_device)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load model from {folder}: {exc}") from exc
        id2label = model.config.id2label
        taxonomy = load_taxonomy(folder / "taxonomy.csv").reorder([id2label[i] for i in range(len(id2label))])
        return cls(
            model,
            tokenizer,
            taxonomy,
            thresholds or Thresholds.load(folder / "thresholds.json"),
            str(manifest.get("version", folder.name)),
            device=torch_device,
            max_length=int(manifest.get("max_length", 64)),
            batch_size=batch_size,
            bucket_by_length=bucket_by_length,
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Intent probabilities, shape (len(texts), n_intents), columns in ``taxonomy.intents`` order."""
        if not texts:
            return np.zeros((0, len(self.taxonomy.rules)), dtype=np.float32)
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        ids: list[list[int]] = encoded["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i])) if self.bucket_by_length else list(
            range(len(ids))
        )
        out = np.empty((len(ids), len(self.taxonomy.rules)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                batch = self.tokenizer.pad(
                    {"input_ids": [ids[i] for i in chunk]}, padding=True, return_tensors="pt"
                ).to(self.device)
                logits = self.model(**batch).logits
                out[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """Triage each text; ``latency_ms`` is the model time of the whole call."""
        started = time.perf_counter()
        probs = self.predict_proba(texts)
        elapsed = (time.perf_counter() - started) * 1000.0
        return decide(probs, self.taxonomy, self.thresholds, self.version, latency_ms=elapsed)
