"""ONNX (fp32) and dynamically quantised int8 ONNX beside the safetensors weights.

``triage train`` writes both into every new checkpoint (``export_for_serving``) and judges each against
torch on the validation split: an export that loses more than ``MAX_ACCURACY_LOSS_POINTS`` of intent
accuracy, or changes High recall under the checkpoint's thresholds by more than the one ticket that sits
on a threshold, is marked unfit and never served by backend ``auto``. ``triage export`` does the same for
older checkpoints, and also measures every engine on the test split and one text at a time (the worker's
worst case), interleaved so shared-CPU noise hits all alike.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from inference.checkpoint import read_manifest, resolve_checkpoint
from inference.classifier import ONNX_FILES, SERVING_FILE, Classifier, OnnxModel
from inference.scope import ScopeDetector
from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES
from trainer.data import Split, TicketData, training_splits
from trainer.evaluate import update_metrics
from trainer.metrics import predictions, summary
from trainer.modelcard import write_model_card

__all__ = ["MAX_ACCURACY_LOSS_POINTS", "OPSET", "export_checkpoint", "export_for_serving", "export_onnx",
           "quantize_int8", "serving_verdict"]

log = structlog.get_logger(__name__)

OPSET = 17
MAX_ACCURACY_LOSS_POINTS = 0.5
_CHUNK = 25


def export_onnx(folder: Path, target: Path) -> Path:
    """Trace the classifier to ONNX with dynamic batch and sequence axes (TorchScript exporter, offline).

    The graph outputs ``logits`` and ``features`` (the head's input), so every backend scores scope.
    """
    import torch
    from transformers import AutoTokenizer

    from inference.torch_model import classification_head, load_module

    model = load_module(folder).eval()
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
        # A first-token checkpoint's pooler gathers position 0, never a negative index.
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


def export_for_serving(
    folder: Path, reference: Classifier, validation: Split, scored: tuple[np.ndarray, np.ndarray | None]
) -> dict[str, Any]:
    """Write both ONNX files into ``folder``, judge each against torch on ``validation``, write the verdicts.

    The verdicts file (``onnx/serving.json``) is written last, so a reader never sees a verdict without its
    model. ``folder`` needs the weights, tokenizer and ``scope.safetensors`` (when the checkpoint has a detector).

    Args:
        folder: The checkpoint (or its staging folder before publishing).
        reference: The torch classifier with the checkpoint's thresholds.
        validation: The split the thresholds were tuned on.
        scored: ``reference``'s probabilities and scope scores on ``validation``.

    Returns:
        ``{"split", "n", "max_accuracy_loss_points", "torch": figures, "backends": {name: figures + fit,
        reason}, "files", "sizes_mb"}``; the same dict is stored in ``onnx/serving.json``.
    """
    (folder / "onnx").mkdir(exist_ok=True)
    fp32 = export_onnx(folder, folder / ONNX_FILES["onnx"])
    quantize_int8(fp32, folder / ONNX_FILES["onnx-int8"])
    scope = ScopeDetector.load(folder)
    torch_row = _figures(reference, validation, scored, scored)
    backends = {}
    for backend in ONNX_FILES:
        onnx = Classifier(OnnxModel(folder / ONNX_FILES[backend]), reference.tokenizer, reference.taxonomy,
                          reference.thresholds, reference.version, device="cpu",
                          max_length=reference.max_length, batch_size=reference.batch_size, scope=scope)
        row = _figures(onnx, validation, onnx.predict_scored(validation.texts), scored)
        backends[backend] = {**row, **serving_verdict(row, torch_row)}
    files = {"torch": "model.safetensors", **ONNX_FILES}
    report: dict[str, Any] = {
        "split": "validation",
        "n": len(validation.texts),
        "max_accuracy_loss_points": MAX_ACCURACY_LOSS_POINTS,
        "torch": torch_row,
        "backends": backends,
        "files": files,
        "sizes_mb": {name: round((folder / rel).stat().st_size / 1e6, 1) for name, rel in files.items()},
    }
    path = folder / SERVING_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    log.info("export_judged", **{f"{name}_fit": row["fit"] for name, row in backends.items()},
             **{f"{name}_delta_points": row["accuracy_delta_points"] for name, row in backends.items()})
    return report


def _figures(
    classifier: Classifier,
    split: Split,
    scored: tuple[np.ndarray, np.ndarray | None],
    reference: tuple[np.ndarray, np.ndarray | None],
) -> dict[str, Any]:
    """Decisions under the checkpoint's thresholds and scope rule, and agreement with the reference engine."""
    probs, scores = scored
    decided = predictions(probs, split.intents, classifier.taxonomy, classifier.thresholds, scores)
    figures = summary(decided)
    row: dict[str, Any] = {key: figures[key] for key in ("intent_accuracy", "high_recall", "out_of_scope_rate")}
    row["high_support"] = int((decided.priority.true == PRIORITIES.index(Priority.HIGH)).sum())
    row["agreement"] = float((probs.argmax(axis=1) == reference[0].argmax(axis=1)).mean())
    if scores is not None and reference[1] is not None:
        gap = np.abs(scores - reference[1])
        row["scope_score_mean_abs_diff"], row["scope_score_max_abs_diff"] = float(gap.mean()), float(gap.max())
    return row


def serving_verdict(row: dict[str, Any], torch_row: dict[str, Any]) -> dict[str, Any]:
    """Fit to serve unless it loses more than the allowed accuracy or changes High recall; says why.

    High recall may move by one ticket: the thresholds were tuned on this split, so one High ticket sits
    exactly on a threshold by construction, and float noise alone flips it (fp32 ONNX, same intent as torch
    on every ticket, did so in two of three quick-preset runs). More than one is a change.
    """
    delta = 100 * (row["intent_accuracy"] - torch_row["intent_accuracy"])
    recall, torch_recall = row["high_recall"], torch_row["high_recall"]
    tickets = round(abs(recall - torch_recall) * row["high_support"])
    problems = []
    if delta < -MAX_ACCURACY_LOSS_POINTS:
        problems.append(f"loses {-delta:.2f} points of validation intent accuracy (> {MAX_ACCURACY_LOSS_POINTS:g})")
    if tickets > 1:
        problems.append(
            f"changes validation High recall {100 * torch_recall:.2f}% → {100 * recall:.2f}% ({tickets} tickets)"
        )
    same = "unchanged" if tickets == 0 else "within one ticket of torch's"
    reason = "; ".join(problems) or (
        f"validation intent accuracy {100 * row['intent_accuracy']:.2f}% ({delta:+.2f} points vs torch), "
        f"High recall {100 * recall:.2f}% ({same}), {100 * row['agreement']:.1f}% same intent as torch"
    )
    return {"accuracy_delta_points": round(delta, 2), "fit": not problems, "reason": reason}


def export_checkpoint(
    model: Path, data: TicketData, bench_texts: int = 300, threads: int | None = None
) -> dict[str, Any]:
    """``triage export`` for a checkpoint trained before exports were part of it (or to redo them).

    Writes and judges both exports like ``triage train`` (on the same validation split, rebuilt from the
    manifest's seed and share), then measures every engine on the test split and one text at a time; all of
    it goes to metrics.json and the model card.

    Args:
        model: Checkpoint folder or ``latest``.
        data: TicketData; the whole test split is scored by every engine.
        bench_texts: Test texts timed one at a time per engine.
        threads: CPU threads for every engine alike (torch and ONNX Runtime); default: torch's setting.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    folder = resolve_checkpoint(model)
    manifest = read_manifest(folder)
    hyperparameters = manifest["hyperparameters"]
    _, validation = training_splits(data, hyperparameters["val_fraction"], hyperparameters["seed"])
    reference = Classifier.load(folder, backend="torch", batch_size=64)
    serving = export_for_serving(folder, reference, validation, reference.predict_scored(validation.texts))
    threads = torch.get_num_threads()
    engines = {"torch": reference, "onnx": Classifier.load(folder, backend="onnx", batch_size=64, threads=threads),
               "onnx-int8": Classifier.load(folder, backend="onnx-int8", batch_size=64, threads=threads)}
    report: dict[str, Any] = {
        **serving,
        "engines": _measure(engines, data, bench_texts),
        "bench_texts": bench_texts,
        "threads": torch.get_num_threads(),
    }
    metrics = update_metrics(folder, {"export": report})
    write_model_card(folder, manifest, metrics)
    log.info("export_done", folder=str(folder), **{
        f"{name}_single_tps": row["single_texts_per_second"] for name, row in report["engines"].items()
    })
    return report


def _measure(engines: dict[str, Classifier], data: TicketData, bench_texts: int) -> dict[str, dict[str, float]]:
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
