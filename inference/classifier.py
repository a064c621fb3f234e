"""The one inference core: checkpoint in, ``Triage`` out. Used by the worker, CLI, evaluation and benches."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import structlog
from safetensors import SafetensorError

from inference.checkpoint import CheckpointError, read_manifest, resolve_checkpoint
from inference.decision import Thresholds, decide
from inference.scope import ScopeDetector
from inference.tokenizer import TextTokenizer
from schemas.messages import Triage
from schemas.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from inference.torch_model import TorchModel

__all__ = [
    "Backend", "Classifier", "Encoder", "ONNX_FILES", "OnnxModel", "SERVING_FILE", "ServedBackend", "Serving",
    "default_batch_tokens", "default_device", "resolve_backend",
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
_GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")
"""NVIDIA's driver (Linux, and its containers), WSL 2's GPU bridge, AMD's ROCm driver."""


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
    target = device or default_device()
    if requested == "torch":
        return Serving("torch", target, "fp32", "set explicitly")
    if requested != "auto":
        raise ValueError(f"unknown backend {requested!r}; use auto, torch, onnx or onnx-int8")
    if target.startswith("cuda"):
        from inference.torch_model import device_name, half_precision

        return Serving("torch", target, half_precision(), f"auto: CUDA device {device_name(target)}")
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
    return Serving("torch", target, "fp32", "; ".join(["auto: CPU, no export fit to serve", *passed_over]))


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


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``; torch is imported only where a GPU driver is present.

    Importing torch takes seconds, which a CPU machine's ONNX model process would pay at every start. CUDA
    needs the NVIDIA (or ROCm) kernel driver, whose files exist on such hosts and in their GPU containers.
    """
    if importlib.util.find_spec("torch") is None or not any(Path(p).exists() for p in _GPU_DRIVER_FILES):
        return "cpu"
    from inference.torch_model import pick_device

    return str(pick_device())


def default_batch_tokens(device: str) -> int:
    """Padded tokens per forward pass: small on CPU, where padding is paid in full; large on a GPU.

    On 2 CPU cores, micro-batches of 64 Banking77 texts ran 1.7× faster (torch) and 2.2× (ONNX int8) in
    passes of ≤ 512 padded tokens than in one pass of 64 (see ``triage bench model``).
    """
    return 16_384 if device.startswith("cuda") else 512


class Encoder(Protocol):
    """A backend's forward pass: padded ids and mask in, logits and the classification head's input out.

    Features are None only for an ONNX export made before they were exported.
    """

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


class OnnxModel:
    """An ONNX Runtime session with the same call shape as the torch model: ids + mask in, logits out."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))  # affinity, unlike cpu_count
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
        model: Encoder,
        tokenizer: TextTokenizer,
        taxonomy: Taxonomy,
        thresholds: Thresholds,
        version: str,
        *,
        device: str = "cpu",
        max_length: int = 64,
        batch_size: int = 32,
        bucket_by_length: bool = True,
        max_batch_tokens: int | None = None,
        scope: ScopeDetector | None = None,
        serving: Serving | None = None,
    ) -> None:
        self.model = model
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
            "onnx" if isinstance(model, OnnxModel) else "torch", device, "fp32", "built in process"
        )

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
        threads: int | None = None,
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
                export``), or ``auto``, the serving entry points' default (see ``resolve_backend``). Only
                ``torch`` imports torch and transformers.
            threads: Intra-op threads; default: ONNX Runtime takes the cores available, torch keeps its own.
        """
        folder = resolve_checkpoint(path)
        manifest = read_manifest(folder)
        serving = resolve_backend(folder, backend, device)
        max_length = int(manifest.get("max_length", 64))
        model: Encoder
        try:
            tokenizer = TextTokenizer.load(folder, max_length)
            labels = json.loads((folder / "config.json").read_text(encoding="utf-8"))["id2label"]
            if serving.backend == "torch":
                from inference.torch_model import TorchModel

                model = TorchModel.load(folder, serving.device, serving.precision, threads)
            else:
                model = OnnxModel(_onnx_file(folder, serving.backend), threads)
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            raise CheckpointError(
                f"cannot load model from {folder}: {exc} — retrain with `triage train --preset quick`"
            ) from exc
        scope = ScopeDetector.load(folder)
        if scope is not None and isinstance(model, OnnxModel) and "features" not in model.output_names:
            log.warning("scope_needs_new_export", path=str(folder), backend=serving.backend,
                        detail="re-run `triage export`; out_of_scope is never set with this export")
            scope = None
        try:
            taxonomy = load_taxonomy(folder / "taxonomy.csv").reorder([labels[str(i)] for i in range(len(labels))])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{folder}: labels do not match its taxonomy.csv ({exc})") from exc
        return cls(
            model,
            tokenizer,
            taxonomy,
            thresholds or Thresholds.load(folder / "thresholds.json"),
            str(manifest.get("version", folder.name)),
            device=serving.device,
            max_length=max_length,
            batch_size=batch_size,
            bucket_by_length=bucket_by_length,
            max_batch_tokens=max_batch_tokens,
            scope=scope,
            serving=serving,
        )

    @property
    def torch_model(self) -> TorchModel:
        """The torch model, for training steps that read its weights (a checkpoint served on ONNX has none)."""
        from inference.torch_model import TorchModel

        if not isinstance(self.model, TorchModel):
            raise TypeError(f"{self.version} is served on {self.serving.backend}, not torch")
        return self.model

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
        ids = self.tokenizer.ids(texts)
        features: np.ndarray | None = None
        for chunk in self._passes([len(i) for i in ids]):
            logits, chunk_features = self.model.run(*self.tokenizer.pad([ids[i] for i in chunk]))
            exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probs[chunk] = exp / exp.sum(axis=-1, keepdims=True)
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

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """Triage each text; ``latency_ms`` is the model time of the whole call."""
        started = time.perf_counter()
        probs, scope_scores = self.predict_scored(texts)
        elapsed = (time.perf_counter() - started) * 1000.0
        return decide(probs, self.taxonomy, self.thresholds, self.version, latency_ms=elapsed,
                      scope_scores=scope_scores)


def _onnx_file(folder: Path, backend: str) -> Path:
    path = folder / ONNX_FILES[backend]
    if not path.is_file():
        raise CheckpointError(
            f"{folder} has no {ONNX_FILES[backend]} — run `triage export --model {folder}` or use backend torch"
        )
    return path
