"""ONNX export: both files load through the one inference core and agree with torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inference.classifier import ONNX_FILES, SERVING_FILE, Classifier
from trainer.data import Split, TicketData
from trainer.export import export_checkpoint, serving_verdict


def test_export_measures_and_serves_onnx(checkpoint_copy: Path, thin_banking77: TicketData) -> None:
    sample = TicketData(thin_banking77.train, Split(thin_banking77.test.texts[:120], thin_banking77.test.intents[:120]),
                        thin_banking77.source, thin_banking77.taxonomy)
    report = export_checkpoint(checkpoint_copy, sample, bench_texts=20)
    for rel in ONNX_FILES.values():
        assert (checkpoint_copy / rel).is_file()
    assert report["sizes_mb"]["onnx-int8"] < report["sizes_mb"]["onnx"] / 2
    engines = report["engines"]
    assert set(engines) == {"torch", "onnx", "onnx-int8"}
    assert engines["onnx"]["intent_accuracy"] == engines["torch"]["intent_accuracy"]
    assert abs(engines["onnx-int8"]["accuracy_delta_points"]) < 5
    assert json.loads((checkpoint_copy / "metrics.json").read_text(encoding="utf-8"))["export"] == report
    verdicts = json.loads((checkpoint_copy / SERVING_FILE).read_text(encoding="utf-8"))
    assert verdicts["split"] == "validation" and set(verdicts["backends"]) == {"onnx", "onnx-int8"}
    assert report["backends"] == verdicts["backends"]
    assert "## Exports" in (checkpoint_copy / "README.md").read_text(encoding="utf-8")

    texts = sample.test.texts[:16]
    torch_probs = Classifier.load(checkpoint_copy, backend="torch").predict_proba(texts)
    onnx = Classifier.load(checkpoint_copy, backend="onnx", batch_size=5)
    np.testing.assert_allclose(onnx.predict_proba(texts), torch_probs, atol=1e-4)
    int8 = Classifier.load(checkpoint_copy, backend="onnx-int8")
    assert (int8.predict_proba(texts).argmax(axis=1) == torch_probs.argmax(axis=1)).mean() >= 0.8
    torch_triage = Classifier.load(checkpoint_copy, backend="torch").predict(texts)
    assert [t.category for t in onnx.predict(texts)] == [t.category for t in torch_triage]


def _row(accuracy: float, recall: float) -> dict[str, float]:
    return {"intent_accuracy": accuracy, "high_recall": recall, "high_support": 100, "agreement": 0.99}


def test_an_export_that_loses_accuracy_or_changes_high_recall_is_unfit() -> None:
    torch_row = _row(0.900, 0.98)
    fit = serving_verdict(_row(0.896, 0.98), torch_row)
    assert fit["fit"] and fit["accuracy_delta_points"] == -0.4 and "High recall 98.00% (unchanged)" in fit["reason"]
    lossy = serving_verdict(_row(0.894, 0.98), torch_row)
    assert not lossy["fit"] and lossy["reason"] == "loses 0.60 points of validation intent accuracy (> 0.5)"
    for recall in (0.96, 1.0):
        changed = serving_verdict(_row(0.900, recall), torch_row)
        assert not changed["fit"] and changed["reason"].startswith("changes validation High recall 98.00%")
        assert changed["reason"].endswith("(2 tickets)")


def test_one_high_ticket_on_a_threshold_may_flip() -> None:
    for recall in (0.97, 0.99):
        verdict = serving_verdict(_row(0.900, recall), _row(0.900, 0.98))
        assert verdict["fit"] and "within one ticket of torch's" in verdict["reason"]
