"""``triage export``: ONNX (fp32) and dynamically quantised int8 ONNX beside the safetensors weights.

Both are measured against torch fp32 in the same run: intent accuracy on the whole test split and
one-text-at-a-time throughput (the worker's worst case), interleaved so shared-CPU noise hits all alike.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from trainer.data import Banking77
from trainer.evaluate import update_metrics
from triage.checkpoint import resolve_checkpoint
from triage.classifier import ONNX_FILES, Classifier, classification_head

__all__ = ["OPSET", "export_checkpoint", "export_onnx", "quantize_int8"]

log = structlog.get_logger(__name__)

OPSET = 17
_CHUNK = 25


def export_onnx(folder: Path, target: Path) -> Path:
    """Trace the classifier to ONNX with dynamic batch and sequence axes (TorchScript exporter, offline).

    The graph outputs ``logits`` and ``features`` (the head's input), so every backend scores scope.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        folder, use_safetensors=True, trust_remote_code=False
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)

    class LogitsAndFeatures(torch.nn.Module):
        """Logits plus the classification head's input, which the out-of-scope detector scores."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.features: list[torch.Tensor] = []
            classification_head(model).register_forward_hook(lambda _m, args, _o: self.features.append(args[0]))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            self.features.clear()
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits, self.features[0]

    sample = tokenizer(["my card was stolen yesterday", "hi"], padding=True, return_tensors="pt")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings():
        # The tracer warns that mask-size checks become constants; for an encoder they are always false
        # (mask length == sequence length, never causal), and tests compare ONNX with torch on mixed lengths.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The pooler's CLS gather indexes position 0, never a negative index.
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        _trace(LogitsAndFeatures(), sample, tmp)
    os.replace(tmp, target)
    target.chmod(0o644)
    return target


def _trace(module: Any, sample: Any, tmp: Path) -> None:
    import torch

    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        module,
        (sample["input_ids"], sample["attention_mask"]),
        str(tmp),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits", "features"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}, "features": {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation of the MatMul weights (activations stay float; no calibration data)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # the quantiser logs one INFO line per tensor on the root logger
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)
    os.replace(tmp, target)
    target.chmod(0o644)
    return target


def export_checkpoint(
    model: Path, data: Banking77, bench_texts: int = 300, threads: int | None = None
) -> dict[str, Any]:
    """Export both ONNX files into ``<checkpoint>/onnx/``, measure them against torch, store in metrics.json.

    Args:
        model: Checkpoint folder or ``latest``.
        data: Banking77; the whole test split is scored by every engine.
        bench_texts: Test texts timed one at a time per engine.
        threads: CPU threads for every engine alike (torch and ONNX Runtime); default: torch's setting.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    folder = resolve_checkpoint(model)
    onnx_dir = folder / "onnx"
    onnx_dir.mkdir(exist_ok=True)
    fp32 = export_onnx(folder, folder / ONNX_FILES["onnx"])
    quantize_int8(fp32, folder / ONNX_FILES["onnx-int8"])
    engines = {name: Classifier.load(folder, backend=name, batch_size=64) for name in ("torch", "onnx", "onnx-int8")}
    files = {"torch": "model.safetensors", **ONNX_FILES}
    report: dict[str, Any] = {
        "engines": _measure(engines, data, bench_texts),
        "files": files,
        "sizes_mb": {name: round((folder / rel).stat().st_size / 1e6, 1) for name, rel in files.items()},
        "bench_texts": bench_texts,
        "threads": torch.get_num_threads(),
    }
    update_metrics(folder, {"export": report})
    log.info("export_done", folder=str(folder), **{
        f"{name}_single_tps": row["single_texts_per_second"] for name, row in report["engines"].items()
    })
    return report


def _measure(engines: dict[str, Classifier], data: Banking77, bench_texts: int) -> dict[str, dict[str, float]]:
    index = {name: i for i, name in enumerate(engines["torch"].taxonomy.intents)}
    truth = np.array([index[i] for i in data.test.intents])
    rows: dict[str, dict[str, float]] = {}
    for name, clf in engines.items():
        started = time.perf_counter()
        probs = clf.predict_proba(data.test.texts)
        seconds = time.perf_counter() - started
        rows[name] = {"intent_accuracy": float((probs.argmax(axis=1) == truth).mean()),
                      "batched_texts_per_second": round(len(truth) / seconds, 1)}
    texts = data.test.texts[:bench_texts]
    spent = dict.fromkeys(engines, 0.0)
    for start in range(0, len(texts), _CHUNK):
        for name, clf in engines.items():
            chunk = texts[start : start + _CHUNK]
            began = time.perf_counter()
            for text in chunk:
                clf.predict_proba([text])
            spent[name] += time.perf_counter() - began
    for name in engines:
        rows[name]["single_texts_per_second"] = round(len(texts) / spent[name], 1)
        rows[name]["accuracy_delta_points"] = round(
            100 * (rows[name]["intent_accuracy"] - rows["torch"]["intent_accuracy"]), 2
        )
    return rows
