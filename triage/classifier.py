"""The one inference core: checkpoint in, ``Triage`` out. Used by the worker, CLI, evaluation and benches."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from schemas.messages import Triage
from schemas.taxonomy import Taxonomy, load_taxonomy
from triage.checkpoint import CheckpointError, read_manifest, resolve_checkpoint
from triage.decision import Thresholds, decide

__all__ = ["Backend", "Classifier", "ONNX_FILES", "OnnxModel", "default_batch_tokens", "pick_device"]

Backend = Literal["torch", "onnx", "onnx-int8"]
ONNX_FILES: dict[str, str] = {"onnx": "onnx/model.onnx", "onnx-int8": "onnx/model.int8.onnx"}
"""Where ``triage export`` writes each ONNX variant inside a checkpoint folder."""


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_batch_tokens(device: torch.device) -> int:
    """Padded tokens per forward pass: small on CPU, where padding is paid in full; large on a GPU.

    On 2 CPU cores, micro-batches of 64 Banking77 texts ran 1.7× faster (torch) and 2.2× (ONNX int8) in
    passes of ≤ 512 padded tokens than in one pass of 64 (see ``triage bench model``).
    """
    return 16_384 if device.type == "cuda" else 512


class OnnxModel:
    """An ONNX Runtime session with the same call shape as the torch model: ids + mask in, logits out."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        result: np.ndarray = self.session.run(["logits"], {k: v for k, v in feeds.items() if k in self.input_names})[0]
        return result


class Classifier:
    """A fine-tuned intent model plus the taxonomy and thresholds saved with it."""

    def __init__(
        self,
        model: torch.nn.Module | OnnxModel,
        tokenizer: PreTrainedTokenizerBase,
        taxonomy: Taxonomy,
        thresholds: Thresholds,
        version: str,
        *,
        device: torch.device,
        max_length: int = 64,
        batch_size: int = 32,
        bucket_by_length: bool = True,
        max_batch_tokens: int | None = None,
    ) -> None:
        self.model = model.eval() if isinstance(model, torch.nn.Module) else model
        self.tokenizer = tokenizer
        self.taxonomy = taxonomy
        self.thresholds = thresholds
        self.version = version
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        self.max_batch_tokens = max_batch_tokens or default_batch_tokens(device)

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        device: str | None = None,
        batch_size: int = 32,
        bucket_by_length: bool = True,
        max_batch_tokens: int | None = None,
        thresholds: Thresholds | None = None,
        backend: Backend = "torch",
    ) -> Classifier:
        """Load a checkpoint folder (or ``latest``); safetensors only, never remote code.

        Args:
            path: Checkpoint folder or a link to one.
            device: ``cpu``/``cuda``/...; default picks CUDA when available.
            batch_size: Most texts in one forward pass; bigger inputs are split.
            bucket_by_length: Sort texts by length and cut passes at ``max_batch_tokens`` to save padding.
            max_batch_tokens: Most padded tokens in one forward pass when bucketing; default by device.
            thresholds: Override the thresholds stored with the checkpoint.
            backend: ``torch`` (safetensors weights), or ``onnx`` / ``onnx-int8`` (ONNX Runtime on CPU,
                files written by ``triage export``).
        """
        folder = resolve_checkpoint(path)
        manifest = read_manifest(folder)
        torch_device = pick_device(device) if backend == "torch" else torch.device("cpu")
        model: torch.nn.Module | OnnxModel
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
            config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
            if backend == "torch":
                model = AutoModelForSequenceClassification.from_pretrained(
                    folder, use_safetensors=True, trust_remote_code=False
                ).to(torch_device)
            else:
                model = OnnxModel(_onnx_file(folder, backend))
        except (OSError, ValueError, SafetensorError) as exc:
            raise CheckpointError(
                f"cannot load model from {folder}: {exc} — retrain with `triage train --preset quick`"
            ) from exc
        try:
            taxonomy = load_taxonomy(folder / "taxonomy.csv").reorder(
                [config.id2label[i] for i in range(len(config.id2label))]
            )
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{folder}: labels do not match its taxonomy.csv ({exc})") from exc
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
            max_batch_tokens=max_batch_tokens,
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Intent probabilities, shape (len(texts), n_intents), columns in ``taxonomy.intents`` order."""
        if not texts:
            return np.zeros((0, len(self.taxonomy.rules)), dtype=np.float32)
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        ids: list[list[int]] = encoded["input_ids"]
        out = np.empty((len(ids), len(self.taxonomy.rules)), dtype=np.float32)
        with torch.inference_mode():
            for chunk in self._passes([len(i) for i in ids]):
                batch = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, padding=True, return_tensors="np")
                out[chunk] = self._probs(batch["input_ids"], batch["attention_mask"])
        return out

    def _passes(self, lengths: list[int]) -> Iterator[list[int]]:
        """Text indices per forward pass.

        Bucketed: shortest first, a pass ends before it would exceed ``batch_size`` texts or
        ``max_batch_tokens`` padded tokens, so short texts never pad to a long one. Unbucketed: input order,
        ``batch_size`` at a time.
        """
        if not self.bucket_by_length:
            for start in range(0, len(lengths), self.batch_size):
                yield list(range(start, min(start + self.batch_size, len(lengths))))
            return
        chunk: list[int] = []
        for index in sorted(range(len(lengths)), key=lengths.__getitem__):
            grown = len(chunk) + 1
            if chunk and (grown > self.batch_size or grown * lengths[index] > self.max_batch_tokens):
                yield chunk
                chunk = []
            chunk.append(index)
        if chunk:
            yield chunk

    def _probs(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if isinstance(self.model, OnnxModel):
            logits = self.model.logits(input_ids, attention_mask)
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            return exp / exp.sum(axis=-1, keepdims=True)
        logits_t = self.model(
            input_ids=torch.from_numpy(input_ids).to(self.device),
            attention_mask=torch.from_numpy(attention_mask).to(self.device),
        ).logits
        probs: np.ndarray = torch.softmax(logits_t.float(), dim=-1).cpu().numpy()
        return probs

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """Triage each text; ``latency_ms`` is the model time of the whole call."""
        started = time.perf_counter()
        probs = self.predict_proba(texts)
        elapsed = (time.perf_counter() - started) * 1000.0
        return decide(probs, self.taxonomy, self.thresholds, self.version, latency_ms=elapsed)


def _onnx_file(folder: Path, backend: str) -> Path:
    if backend not in ONNX_FILES:
        raise CheckpointError(f"unknown backend {backend!r}; use torch, onnx or onnx-int8")
    path = folder / ONNX_FILES[backend]
    if not path.is_file():
        raise CheckpointError(
            f"{folder} has no {ONNX_FILES[backend]} — run `triage export --model {folder}` or use backend torch"
        )
    return path
