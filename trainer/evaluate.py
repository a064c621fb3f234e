"""Test-split evaluation of a checkpoint beside the TF-IDF + LinearSVC baseline: metrics, plots, reports."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from inference.checkpoint import read_manifest, resolve_checkpoint
from inference.classifier import Classifier
from trainer import metrics as m
from trainer.baseline import tfidf_svm_probs
from trainer.data import Split, TicketData, subsample, training_splits
from trainer.modelcard import write_model_card
from trainer.plots import confusion_matrix_png, reliability_diagram
from trainer.scope import OffTopicSet, ood_report, reporting_offtopic

__all__ = [
    "METRICS_FILE",
    "PLOTS",
    "evaluate_checkpoint",
    "evaluate_classifier",
    "fitted_files",
    "seen_splits",
    "update_metrics",
]

log = structlog.get_logger(__name__)

METRICS_FILE = "metrics.json"
PLOTS = ("confusion_intent.png", "confusion_category.png", "reliability.png")


def seen_splits(data: TicketData, hyperparameters: dict[str, Any]) -> tuple[Split, Split]:
    """Rebuild the exact training and validation examples a checkpoint saw (same seed, validation share, cap)."""
    train, val = training_splits(data, hyperparameters["val_fraction"], hyperparameters["seed"])
    return subsample(train, hyperparameters.get("max_train_examples"), hyperparameters["seed"]), val


def evaluate_classifier(
    classifier: Classifier,
    data: TicketData,
    seen: tuple[Split, Split],
    plots_dirs: list[Path],
    ood: list[OffTopicSet],
    seen_features: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Score ``classifier`` on the test split, fit the baseline on the training split of ``seen`` (training,
    validation), draw the plots, and measure the out-of-scope detector and rule (when the checkpoint has one)
    on ``ood``, sets that fitted nothing (``trainer.scope.reporting_offtopic``). ``seen_features``: those splits'
    features, when already encoded.

    Returns:
        ``{"test": summary, "baseline_tfidf_svm": summary, "per_class": ..., "timing": ...,
        "out_of_scope": ...}``.
    """
    taxonomy = classifier.taxonomy
    started = time.perf_counter()
    probs, scope_scores = classifier.predict_scored(data.test.texts)
    infer_seconds = time.perf_counter() - started
    pred = m.predictions(probs, data.test.intents, taxonomy, classifier.thresholds, scope_scores)
    test = m.summary(pred)
    base_probs, base_seconds = tfidf_svm_probs(seen[0], data.test.texts, taxonomy)
    baseline = m.summary(m.predictions(base_probs, data.test.intents, taxonomy, classifier.thresholds))
    for key in ("intent_ece", "category_ece", "review_rate", "routed_category_accuracy"):
        baseline[key] = None  # one-hot scores carry no confidence to calibrate or threshold
    for folder in plots_dirs:
        confusion_matrix_png(pred.intent.true, pred.intent.pred, taxonomy.intents,
                             folder / PLOTS[0], f"Intent confusion (test, {classifier.version})")
        confusion_matrix_png(pred.category.true, pred.category.pred, list(taxonomy.categories),
                             folder / PLOTS[1], f"Category confusion (test, {classifier.version})")
        reliability_diagram(pred.intent_confidence, pred.intent.true == pred.intent.pred,
                            folder / PLOTS[2], f"Intent reliability (test, ECE {test['intent_ece']:.3f})")
    log.info("evaluation_done", version=classifier.version, n=test["n"],
             intent_accuracy=round(test["intent_accuracy"], 4),
             baseline_intent_accuracy=round(baseline["intent_accuracy"], 4))
    scope = {"out_of_scope": ood_report(classifier, data.test, seen, ood, seen_features)} if classifier.scope else {}
    return {
        **scope,
        "test": test,
        "baseline_tfidf_svm": baseline,
        "per_class": m.per_class(pred, taxonomy),
        "timing": {"test_inference_seconds": round(infer_seconds, 2),
                   "texts_per_second": round(len(data.test) / max(infer_seconds, 1e-9), 1),
                   "baseline_fit_seconds": round(base_seconds, 2)},
    }


def evaluate_checkpoint(
    model: Path, data: TicketData, results_dir: Path, ood: list[OffTopicSet]
) -> tuple[Path, dict[str, Any]]:
    """``triage evaluate``: write the report to ``results_dir`` and into the checkpoint's metrics.json.

    Returns:
        The path of the report in ``results_dir/metrics`` and the report itself.
    """
    folder = resolve_checkpoint(model)
    manifest = read_manifest(folder)
    classifier = Classifier.load(folder, batch_size=128)
    version = classifier.version
    report = evaluate_classifier(
        classifier, data, seen_splits(data, manifest["hyperparameters"]),
        [results_dir / "plots" / version, folder / "plots"], reporting_offtopic(ood, fitted_files(folder)),
    )
    report = update_metrics(folder, {**report, "data_source": data.source})
    write_model_card(folder, manifest, report)
    out = results_dir / "metrics" / f"{version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return out, report


def fitted_files(folder: Path) -> set[str]:
    """Names of the out-of-scope files whose first half fitted the checkpoint's rule (its metrics.json says)."""
    path = folder / METRICS_FILE
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return set(metrics.get("scope_fit", {}).get("fitted_files", []))


def update_metrics(folder: Path, update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into ``folder/metrics.json`` atomically (write a temp file, then rename)."""
    path = folder / METRICS_FILE
    current: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    current.update(update)
    tmp = path.with_name(f".{METRICS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return current
