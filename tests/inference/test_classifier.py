"""The inference core on the session's tiny checkpoint: label order, probabilities, routing, refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.checkpoint import CheckpointError
from inference.classifier import SERVING_FILE, Classifier
from schemas.enums import Priority
from trainer.data import load_data

OBVIOUS = {
    "my card was stolen": ("Account/Login", Priority.HIGH),
    "I was charged twice for the same purchase": ("Billing", None),
    "how do I change my PIN?": ("Account/Login", None),
    "my card doesn't work at the shop": ("Technical", None),
    "my new card still hasn't arrived": ("Order/Delivery", None),
    "is there an age limit to open an account?": ("General Inquiry", None),
}

OFF_TOPIC = ["asdkjh qwpoeiru zmxncb", "what's the best pizza topping in Naples?", "thanks, bye!"]


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint: Path) -> Classifier:
    return Classifier.load(tiny_checkpoint, device="cpu")


def test_columns_follow_the_models_labels(classifier: Classifier, tiny_checkpoint: Path) -> None:
    config = json.loads((tiny_checkpoint / "config.json").read_text(encoding="utf-8"))
    assert classifier.taxonomy.intents == [config["id2label"][str(i)] for i in range(77)]
    assert classifier.version == tiny_checkpoint.resolve().name


def test_probabilities_are_rows_of_a_distribution(classifier: Classifier) -> None:
    probs = classifier.predict_proba(list(OBVIOUS) + ["x" * 5000])
    assert probs.shape == (len(OBVIOUS) + 1, 77)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert classifier.predict_proba([]).shape == (0, 77)


def test_batching_and_bucketing_do_not_change_results(tiny_checkpoint: Path, classifier: Classifier) -> None:
    texts = list(OBVIOUS)
    one_by_one = Classifier.load(tiny_checkpoint, device="cpu", batch_size=1, bucket_by_length=False)
    np.testing.assert_allclose(one_by_one.predict_proba(texts), classifier.predict_proba(texts), atol=1e-5)


def test_passes_are_sorted_and_bounded_by_texts_and_padded_tokens(classifier: Classifier) -> None:
    lengths = [30, 5, 6, 31, 7, 5, 60, 8]
    saved = classifier.batch_size, classifier.max_batch_tokens, classifier.bucket_by_length
    classifier.batch_size, classifier.max_batch_tokens = 3, 64
    try:
        passes = list(classifier._passes(lengths))
        assert sorted(i for p in passes for i in p) == list(range(len(lengths)))
        for chunk in passes:
            assert len(chunk) <= 3
            assert len(chunk) == 1 or len(chunk) * max(lengths[i] for i in chunk) <= 64
        assert [[lengths[i] for i in chunk] for chunk in passes] == [[5, 5, 6], [7, 8], [30, 31], [60]]
        classifier.bucket_by_length = False
        assert list(classifier._passes(lengths)) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    finally:
        classifier.batch_size, classifier.max_batch_tokens, classifier.bucket_by_length = saved  # module-scoped


def test_a_small_token_budget_does_not_change_results(tiny_checkpoint: Path, classifier: Classifier) -> None:
    texts = [*OBVIOUS, "x " * 40]
    tight = Classifier.load(tiny_checkpoint, device="cpu", max_batch_tokens=16)
    np.testing.assert_allclose(tight.predict_proba(texts), classifier.predict_proba(texts), atol=1e-5)


def test_obvious_texts_are_routed(classifier: Classifier) -> None:
    for text, triage in zip(OBVIOUS, classifier.predict(list(OBVIOUS)), strict=True):
        category, priority = OBVIOUS[text]
        assert triage.category == category, (text, triage.intent)
        if priority:
            assert triage.priority is priority, (text, triage.intent)
        assert triage.model_version == classifier.version


def test_corrupt_weights_are_refused_with_a_fix(tiny_checkpoint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint.resolve(), broken)
    with (broken / "model.safetensors").open("r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(CheckpointError, match="triage train"):
        Classifier.load(broken)


def test_onnx_backend_needs_an_export(tiny_checkpoint: Path, tmp_path: Path) -> None:
    older = tmp_path / "older"
    shutil.copytree(tiny_checkpoint.resolve(), older, ignore=shutil.ignore_patterns("onnx"))
    with pytest.raises(CheckpointError, match="triage export"):
        Classifier.load(older, backend="onnx-int8")
    assert Classifier.load(older, backend="auto", device="cpu").serving.backend == "torch"


def test_onnx_backends_score_scope_like_torch(tiny_checkpoint: Path, classifier: Classifier, data_dir: Path) -> None:
    texts = load_data(data_dir, "PolyAI/banking77").test.texts[::15] + OFF_TOPIC
    torch_scores = classifier.predict_scored(texts)[1]
    assert torch_scores is not None
    fp32 = Classifier.load(tiny_checkpoint, backend="onnx").predict_scored(texts)[1]
    assert fp32 is not None
    np.testing.assert_allclose(fp32, torch_scores, atol=0.005)
    int8 = Classifier.load(tiny_checkpoint, backend="onnx-int8").predict(texts)
    assert abs(np.array([t.scope_score for t in int8]) - torch_scores).mean() < 0.05
    flags = [t.out_of_scope for t in classifier.predict(texts)]
    assert np.mean([t.out_of_scope == f for t, f in zip(int8, flags, strict=True)]) >= 0.95


def test_auto_serves_what_the_training_run_judged(tiny_checkpoint: Path) -> None:
    verdicts = json.loads((tiny_checkpoint / SERVING_FILE).read_text(encoding="utf-8"))["backends"]
    served = Classifier.load(tiny_checkpoint, backend="auto", device="cpu").serving
    fit = [name for name in ("onnx-int8", "onnx") if verdicts[name]["fit"]]
    assert served.backend == (fit[0] if fit else "torch")
    assert served.reason.startswith("auto: CPU")


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_serving_on_onnx_imports_neither_torch_nor_transformers(tiny_checkpoint: Path, backend: str) -> None:
    """They cost a model process ~17 s of start-up on 2 cores (``inference.torch_model``)."""
    code = (
        "import sys\nfrom inference.classifier import Classifier\n"
        f"Classifier.load(sys.argv[1], backend={backend!r}).predict(['my card was stolen'])\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tiny_checkpoint)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
