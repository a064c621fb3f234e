"""``triage evaluate`` writes every metric and plot, to results/ and into the checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inference.classifier import Classifier
from schemas.enums import Priority
from trainer.data import TicketData
from trainer.evaluate import PLOTS, evaluate_checkpoint
from trainer.urgent import urgent_reports
from triage.cli import main

SUMMARY_KEYS = {
    "intent_accuracy", "intent_macro_f1", "category_accuracy", "category_macro_f1", "priority_accuracy",
    "high_recall", "high_precision", "intent_ece", "category_ece", "review_rate",
}


def test_evaluation_writes_all_files(checkpoint_copy: Path, thin_banking77: TicketData, tmp_path: Path) -> None:
    results = tmp_path / "results"
    path, report = evaluate_checkpoint(checkpoint_copy, thin_banking77, results, [])
    version = checkpoint_copy.name
    assert path == results / "metrics" / f"{version}.json"
    for folder in (results / "plots" / version, checkpoint_copy / "plots"):
        for name in PLOTS:
            assert (folder / name).stat().st_size > 1000, folder / name
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert set(saved["test"]) >= SUMMARY_KEYS and saved["test"]["n"] == len(thin_banking77.test)
    assert {"intent_accuracy", "category_accuracy", "high_recall"} <= set(saved["baseline_tfidf_svm"])
    assert len(saved["per_class"]["intent"]) >= 77 and "Billing" in saved["per_class"]["category"]
    in_checkpoint = json.loads((checkpoint_copy / "metrics.json").read_text(encoding="utf-8"))
    assert in_checkpoint["test"] == saved["test"]
    assert "validation" in in_checkpoint and "thresholds" in in_checkpoint, "training metrics are kept"
    card = (checkpoint_copy / "README.md").read_text(encoding="utf-8")
    assert "plots/confusion_intent.png" in card and "TF-IDF + LinearSVC (test)" in card
    assert 0.3 < report["test"]["intent_accuracy"] <= 1.0
    assert 0.8 < report["baseline_tfidf_svm"]["intent_accuracy"] <= 1.0


def test_cli_evaluate_refuses_a_missing_checkpoint(tmp_path: Path, data_dir: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", "--model", str(tmp_path / "latest"), "--data", str(data_dir)])
    assert result.exit_code == 1
    assert "no checkpoint at" in result.output and "triage train --preset quick" in result.output


@pytest.mark.parametrize("missing", ["thresholds.json", "checkpoint.json"])
def test_cli_evaluate_refuses_an_incomplete_checkpoint(checkpoint_copy: Path, data_dir: Path, missing: str) -> None:
    (checkpoint_copy / missing).unlink()
    result = CliRunner().invoke(main, ["evaluate", "--model", str(checkpoint_copy), "--data", str(data_dir)])
    assert result.exit_code == 1 and missing in result.output and "incomplete" in result.output


def test_cli_evaluate_scores_an_out_of_scope_file(checkpoint_copy: Path, data_dir: Path, tmp_path: Path) -> None:
    """``--ood FILE``: the file's texts are scored as their own set, in the printed table and in metrics.json."""
    thin = tmp_path / "banking77"
    thin.mkdir()
    for name in ("train.csv", "test.csv"):
        with (data_dir / name).open(newline="", encoding="utf-8") as source:
            header, *rows = list(csv.reader(source))
        with (thin / name).open("w", newline="", encoding="utf-8") as target:
            csv.writer(target).writerows([header, *rows[:: 4 if name == "train.csv" else 20]])
    off_topic = ["what will the weather be tomorrow", "play some jazz", "how tall is mount everest",
                 "book a table for two tonight", "translate hello into french", "who won the match yesterday",
                 "set an alarm for seven", "recommend a good novel", "how do I boil an egg", "tell me a joke"]
    ood = tmp_path / "chitchat.jsonl"
    ood.write_text("".join(json.dumps({"text": text}) + "\n" for text in off_topic), encoding="utf-8")
    result = CliRunner().invoke(main, ["evaluate", "--model", str(checkpoint_copy), "--data", str(thin),
                                       "--results", str(tmp_path / "results"), "--ood", str(ood)])
    assert result.exit_code == 0, result.output
    assert "chitchat" in result.output, "the file's set is in the printed table"
    saved = json.loads((tmp_path / "results" / "metrics" / f"{checkpoint_copy.name}.json").read_text())
    scope = saved["out_of_scope"]
    scored = scope["sets"]["chitchat"]
    assert scored["n"] == len(off_topic) and 0.0 <= scored["flagged"] <= 1.0
    assert 0.0 <= scored["detectors"][scope["method"]]["auroc"] <= 1.0
    assert "look-alikes (reporting)" in scope["sets"] and "look-alikes (fitting)" not in scope["sets"]
    # The curve: the chosen point is the served rule, measured on the same sets as the table above it.
    chosen = [row for row in scope["curve"] if row["chosen"]]
    assert len(chosen) == 1 and result.output.count("◀ chosen") == 1
    assert (chosen[0]["flag"], chosen[0]["bar"]) == (scope["thresholds"]["out_of_scope"],
                                                     scope["thresholds"]["high_priority_out_of_scope"])
    assert chosen[0]["high_recall"] == pytest.approx(scope["banking77_test"]["high_recall"])
    assert chosen[0]["hurried_high_recall"] == pytest.approx(scope["banking77_test_hurried"]["high_recall"])
    # Urgent reports written outside Banking77: what the served rule pages of them, as the worker's path decides.
    urgent = scope["urgent_reports"]
    texts = [text for _, text in urgent_reports()]
    served = Classifier.load(checkpoint_copy).predict(texts)
    assert urgent["n"] == len(texts) and "Urgent reports written outside Banking77" in result.output
    assert urgent["paged"] == pytest.approx(sum(t.priority == Priority.HIGH for t in served) / len(texts))
    assert urgent["flagged"] == pytest.approx(sum(t.out_of_scope for t in served) / len(texts))
    assert chosen[0]["urgent_paged"] == pytest.approx(urgent["paged"])
    per_set = [s["paged"] for s in scope["sets"].values()]
    assert chosen[0]["offtopic_paged"] == pytest.approx(sum(per_set) / len(per_set))
    assert len({row["flag"] for row in scope["curve"]}) > 5 and len({row["bar"] for row in scope["curve"]}) > 4
    card = (checkpoint_copy / "README.md").read_text(encoding="utf-8")
    assert "Chosen point" in card and "look-alikes (fitting)" in card
