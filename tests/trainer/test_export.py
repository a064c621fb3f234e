"""ONNX export: both files load through the one inference core and agree with torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trainer.data import Banking77, Split
from trainer.export import export_checkpoint
from triage.classifier import ONNX_FILES, Classifier


def test_export_measures_and_serves_onnx(checkpoint_copy: Path, thin_banking77: Banking77) -> None:
    sample = Banking77(thin_banking77.train, Split(thin_banking77.test.texts[:120], thin_banking77.test.intents[:120]),
                       thin_banking77.source)
    report = export_checkpoint(checkpoint_copy, sample, bench_texts=20)
    for rel in ONNX_FILES.values():
        assert (checkpoint_copy / rel).is_file()
    assert report["sizes_mb"]["onnx-int8"] < report["sizes_mb"]["onnx"] / 2
    engines = report["engines"]
    assert set(engines) == {"torch", "onnx", "onnx-int8"}
    assert engines["onnx"]["intent_accuracy"] == engines["torch"]["intent_accuracy"]
    assert abs(engines["onnx-int8"]["accuracy_delta_points"]) < 5
    assert json.loads((checkpoint_copy / "metrics.json").read_text(encoding="utf-8"))["export"] == report

    texts = sample.test.texts[:16]
    torch_probs = Classifier.load(checkpoint_copy).predict_proba(texts)
    onnx = Classifier.load(checkpoint_copy, backend="onnx", batch_size=5)
    np.testing.assert_allclose(onnx.predict_proba(texts), torch_probs, atol=1e-4)
    int8 = Classifier.load(checkpoint_copy, backend="onnx-int8")
    assert (int8.predict_proba(texts).argmax(axis=1) == torch_probs.argmax(axis=1)).mean() >= 0.8
    torch_triage = Classifier.load(checkpoint_copy).predict(texts)
    assert [t.category for t in onnx.predict(texts)] == [t.category for t in torch_triage]
