"""The one inference core: checkpoint in, ``Triage`` out. Used by the worker, CLI, evaluation and benches."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from inference.checkpoint import CheckpointError, read_manifest, resolve_checkpoint
from inference.decision import Thresholds, decide
from inference.scope import ScopeDetector
from schemas.messages import Triage
from schemas.taxonomy import Taxonomy, load_taxonomy

__all__ = [
    "Backend", "Classifier", "ONNX_FILES", "OnnxModel", "SERVING_FILE", "ServedBackend", "Serving",
    "classification_head", "default_batch_tokens", "pick_device", "resolve_backend",
]

log = structlog.get_logger(__name__)

Backend = Literal["auto", "torch", "onnx", "onnx-int8"]
ServedBackend = Literal["torch", "onnx", "onnx-int8"]
Precision = Literal["fp32", "bf16", "fp16", "int8"]
ONNX_FILES: dict[str, str] = {"onnx": "onnx/model.onnx", "onnx-int8": "onnx/model.int8.onnx"}
"""Where ``triage train`` (and ``triage export``, for older checkpoints) writes each ONNX variant."""
SERVING_FILE = "onnx/serving.json"
"""The exports' validation verdicts (``fit`` and ``reason`` per backend), written after the ONNX files."""
_CPU_PREFERENCE: tuple[Literal["onnx-int8", "onnx"], ...] = ("onnx-int8", "onnx")
_ONNX_PRECISION: dict[str, Precision] = {"onnx-int8": "int8", "onnx": "fp32"}


@dataclass(frozen=True)
class Serving:
    """What a classifier runs on, and why: shown by ``/health``, the worker's log and the demo."""

    backend: ServedBackend
    device: str
    precision: Precision
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "device": self.device, "precision": self.precision, "reason": self.reason}


def resolve_backend(folder: Path, requested: Backend = "auto", device: str | None = None) -> Serving:
    """The engine that serves ``folder``: ``requested`` when explicit, else the fastest one fit to serve.

    ``auto``: on CUDA, torch in bf16 (fp16 where bf16 is unsupported); on CPU, the int8 export when its
    validation verdict (``onnx/serving.json``) says fit, else the fp32 export when fit, else torch fp32.
    """
    if requested == "onnx-int8" or requested == "onnx":
        return Serving(requested, "cpu", _ONNX_PRECISION[requested], "set explicitly")
    target = pick_device(device)
    if requested == "torch":
        return Serving("torch", str(target), "fp32", "set explicitly")
    if requested != "auto":
        raise ValueError(f"unknown backend {requested!r}; use auto, torch, onnx or onnx-int8")
    if target.type == "cuda":
        half: Literal["bf16", "fp16"] = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return Serving("torch", str(target), half, f"auto: CUDA device {torch.cuda.get_device_name(target)}")
    verdicts = _serving_verdicts(folder)
    passed_over = []
    for backend in _CPU_PREFERENCE:
        verdict = verdicts.get(backend)
        if verdict is None:
            passed_over.append(f"{backend} not measured (run `triage export --model {folder}`)")
        elif not (folder / ONNX_FILES[backend]).is_file():
            passed_over.append(f"{backend} file {ONNX_FILES[backend]} missing")
        elif not verdict["fit"]:
            passed_over.append(f"{backend} unfit: {verdict['reason']}")
        else:
            reason = "; ".join([f"auto: CPU, {backend} fit: {verdict['reason']}", *passed_over])
            return Serving(backend, "cpu", _ONNX_PRECISION[backend], reason)
    return Serving("torch", str(target), "fp32", "; ".join(["auto: CPU, no export fit to serve", *passed_over]))


def _serving_verdicts(folder: Path) -> dict[str, dict[str, Any]]:
    """Per ONNX backend, its verdict; empty for a checkpoint exported before verdicts were written."""
    path = folder / SERVING_FILE
    if not path.is_file():
        return {}
    try:
        backends: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["backends"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"unreadable {path}: {exc} — re-run `triage export --model {folder}`") from exc
    return backends


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
        # Idle threads sleep instead of spinning: the worker's event loop, its producer and the broker share
        # these cores. With spinning on, 2-core p99 at half of saturation was 1.6 s and 12.7 s against 0.47 s
        # and 0.50 s without, interleaved runs of `triage bench latency` on a busy machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}

        self.output_names = [o.name for o in self.session.get_outputs() if o.name in ("logits", "features")]

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits, and the classification head's input when the export has it (older exports do not)."""
        feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        outputs = self.session.run(self.output_names, {k: v for k, v in feeds.items() if k in self.input_names})
        named = dict(zip(self.output_names, outputs, strict=True))
        return named["logits"], named.get("features")


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
        scope: ScopeDetector | None = None,
        serving: Serving | None = None,
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
        self.scope = scope
        self.serving = serving or Serving(
            "onnx" if isinstance(model, OnnxModel) else "torch", str(device), "fp32", "built in process"
        )
        self._features: list[torch.Tensor] = []
        if isinstance(model, torch.nn.Module):
            classification_head(model).register_forward_hook(lambda _module, args, _out: self._features.append(args[0]))

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
            backend: ``torch`` (safetensors weights, fp32: the checkpoint itself, what evaluation measures),
                ``onnx`` / ``onnx-int8`` (ONNX Runtime on CPU, files written by ``triage train`` or ``triage
                export``), or ``auto``, the serving entry points' default (see ``resolve_backend``).
        """
        folder = resolve_checkpoint(path)
        manifest = read_manifest(folder)
        serving = resolve_backend(folder, backend, device)
        torch_device = torch.device(serving.device)
        model: torch.nn.Module | OnnxModel
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
            config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
            if serving.backend == "torch":
                model = AutoModelForSequenceClassification.from_pretrained(
                    folder, use_safetensors=True, trust_remote_code=False, dtype=_DTYPES[serving.precision]
                ).to(torch_device)
            else:
                model = OnnxModel(_onnx_file(folder, serving.backend))
        except (OSError, ValueError, SafetensorError) as exc:
            raise CheckpointError(
                f"cannot load model from {folder}: {exc} — retrain with `triage train --preset quick`"
            ) from exc
        scope = ScopeDetector.load(folder)
        if scope is not None and isinstance(model, OnnxModel) and "features" not in model.output_names:
            log.warning("scope_needs_new_export", path=str(folder), backend=serving.backend,
                        detail="re-run `triage export`; out_of_scope is never set with this export")
            scope = None
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
            scope=scope,
            serving=serving,
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Intent probabilities, shape (len(texts), n_intents), columns in ``taxonomy.intents`` order."""
        return self.predict_scored(texts)[0]

    def predict_scored(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Intent probabilities and, when the checkpoint has a detector, each text's ``scope_score``."""
        probs, features = self.encode(texts)
        if self.scope is None or features is None:
            return probs, None
        return probs, self.scope.scores(features)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Intent probabilities and the classification head's input features, from the same passes.

        Features are None only for an ONNX export made before they were exported.
        """
        n_intents = len(self.taxonomy.rules)
        probs = np.empty((len(texts), n_intents), dtype=np.float32)
        if not texts:
            return probs, None
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        ids: list[list[int]] = encoded["input_ids"]
        features: np.ndarray | None = None
        with torch.inference_mode():
            for chunk in self._passes([len(i) for i in ids]):
                batch = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, padding=True, return_tensors="np")
                probs[chunk], chunk_features = self._forward(batch["input_ids"], batch["attention_mask"])
                if chunk_features is not None:
                    if features is None:
                        features = np.empty((len(ids), chunk_features.shape[1]), dtype=np.float32)
                    features[chunk] = chunk_features
        return probs, features

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

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Softmax probabilities and the head's input features of one padded pass."""
        if isinstance(self.model, OnnxModel):
            logits, features = self.model.run(input_ids, attention_mask)
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            return exp / exp.sum(axis=-1, keepdims=True), features
        self._features.clear()
        logits_t = self.model(
            input_ids=torch.from_numpy(input_ids).to(self.device),
            attention_mask=torch.from_numpy(attention_mask).to(self.device),
        ).logits
        probs: np.ndarray = torch.softmax(logits_t.float(), dim=-1).cpu().numpy()
        return probs, self._features[0].float().cpu().numpy() if self._features else None

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """Triage each text; ``latency_ms`` is the model time of the whole call."""
        started = time.perf_counter()
        probs, scope_scores = self.predict_scored(texts)
        elapsed = (time.perf_counter() - started) * 1000.0
        return decide(probs, self.taxonomy, self.thresholds, self.version, latency_ms=elapsed,
                      scope_scores=scope_scores)


def classification_head(model: torch.nn.Module) -> torch.nn.Module:
    """The classification head, whose input (pooled encoder features) the scope detector reads."""
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Module):
        raise CheckpointError(f"{type(model).__name__} has no `classifier` head to read features from")
    return head


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _onnx_file(folder: Path, backend: str) -> Path:
    path = folder / ONNX_FILES[backend]
    if not path.is_file():
        raise CheckpointError(
            f"{folder} has no {ONNX_FILES[backend]} — run `triage export --model {folder}` or use backend torch"
        )
    return path
