"""Training end to end: the session's tiny checkpoint, a CLI smoke run, and no half-written ``latest``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from inference.checkpoint import REQUIRED_FILES, CheckpointError, resolve_checkpoint
from inference.classifier import ONNX_FILES, SERVING_FILE, Classifier
from inference.decision import Thresholds
from inference.pooling import CONFIG_KEY
from inference.scope import SCOPE_FILE
from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, load_taxonomy
from trainer.augment import noisy_copies
from trainer.config import TrainArgs
from trainer.data import Split, load_data, training_splits
from trainer.metrics import predictions
from trainer.pagerule import FLAG_SHARES
from trainer.scope import odd_wording
from trainer.train import BaseModelError, run_training
from trainer.weightmix import MIXES
from triage.cli import main


def test_tiny_checkpoint_is_complete(tiny_checkpoint: Path) -> None:
    assert tiny_checkpoint.is_symlink(), "latest is a link to a version folder"
    folder = resolve_checkpoint(tiny_checkpoint)
    for name in (*REQUIRED_FILES, "README.md", "tokenizer.json", "metrics.json"):
        assert (folder / name).is_file(), name
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt")), "safetensors only"
    manifest = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["version"] == folder.name
    assert manifest["max_length"] == TrainArgs(preset="tiny").max_length
    assert Path(manifest["base_model"]).is_dir()
    assert {"epochs", "lr", "batch_size", "seed", "preset"} <= set(manifest["hyperparameters"])
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert sorted(config["id2label"].values()) == sorted(load_taxonomy().intents)


def test_thresholds_and_validation_metrics_are_stored(tiny_checkpoint: Path) -> None:
    thresholds = Thresholds.load(tiny_checkpoint / "thresholds.json")
    metrics = json.loads((tiny_checkpoint / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["thresholds"] == thresholds.model_dump()
    assert 0.0 < thresholds.high_priority <= 0.5
    assert thresholds.out_of_scope in FLAG_SHARES
    assert thresholds.out_of_scope <= TrainArgs(preset="tiny").scope_flag_budget
    assert thresholds.high_priority <= thresholds.high_priority_out_of_scope <= 1.0
    assert (resolve_checkpoint(tiny_checkpoint) / SCOPE_FILE).is_file(), "the detector ships inside the checkpoint"
    # The rule's chosen point was measured on validation with both thresholds on: the same figures as the summary's.
    fit = metrics["scope_fit"]
    assert metrics["validation"]["high_recall"] == pytest.approx(fit["chosen"]["high_recall"])
    assert metrics["validation"]["out_of_scope_rate"] == pytest.approx(fit["chosen"]["in_scope_flagged"])
    assert fit["chosen"]["high_recall"] >= fit["required_high_recall"]
    assert fit["chosen"]["hurried_high_recall"] >= fit["required_hurried_high_recall"]
    assert set(fit["fitted_sets"]) == {"generated (fitting seed)", "look-alikes (fitting)"}  # no --ood folder given
    assert metrics["validation"]["intent_accuracy"] > 0.5


def test_training_ships_judged_onnx_exports_in_the_checkpoint(tiny_checkpoint: Path) -> None:
    folder = tiny_checkpoint.resolve()
    for rel in ONNX_FILES.values():
        assert (folder / rel).is_file(), rel
    verdicts = json.loads((folder / SERVING_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["export"] == verdicts
    assert verdicts["n"] == metrics["validation"]["n"]
    assert verdicts["torch"]["intent_accuracy"] == metrics["validation"]["intent_accuracy"]
    for row in verdicts["backends"].values():
        assert isinstance(row["fit"], bool) and row["reason"]
        assert 0.9 <= row["agreement"] <= 1.0 and "scope_score_max_abs_diff" in row
    assert verdicts["backends"]["onnx"]["agreement"] >= 0.99
    assert "## Exports" in (folder / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tiny_validation(data_dir: Path) -> Split:
    """The validation split the tiny checkpoint's mix and thresholds were chosen on."""
    args = TrainArgs(preset="tiny")
    return training_splits(load_data(data_dir, args.hub_dataset), args.val_fraction, args.seed)[1]


@pytest.fixture(scope="module")
def tiny_torch(tiny_checkpoint: Path) -> Classifier:
    """The tiny checkpoint on torch, as training scored it."""
    return Classifier.load(tiny_checkpoint, backend="torch", batch_size=128)


def test_the_checkpoint_holds_the_weight_mix_it_chose(
    tiny_checkpoint: Path, tiny_validation: Split, tiny_torch: Classifier
) -> None:
    """Saved after the mix: its accuracy on validation and the odd-wording copies is the chosen share's score."""
    metrics = json.loads((tiny_checkpoint / "metrics.json").read_text(encoding="utf-8"))
    config = json.loads((tiny_checkpoint / "config.json").read_text(encoding="utf-8"))
    assert config[CONFIG_KEY] == "mean"
    mix = metrics["weight_mix"]
    assert mix["share"] in MIXES and set(mix["accuracy"]) == {f"{share:g}" for share in MIXES}
    assert mix["accuracy"][f"{mix['share']:g}"] == max(mix["accuracy"].values())
    val, classifier = tiny_validation, tiny_torch
    truth = np.array([classifier.taxonomy.intents.index(intent) for intent in val.intents])
    scores = [(classifier.predict_proba(texts).argmax(axis=1) == truth).mean()
              for texts in (val.texts, *odd_wording(val.texts))]
    assert float(np.mean(scores)) == pytest.approx(mix["accuracy"][f"{mix['share']:g}"], abs=2e-3)


def test_the_high_bar_keeps_its_recall_on_validation_and_a_typo_copy_of_it(
    tiny_validation: Split, tiny_torch: Classifier
) -> None:
    """99% of a few High validation tickets leaves a miss to chance; with a typo copy of each, the bar keeps its
    target over both."""
    args, val, classifier = TrainArgs(preset="tiny"), tiny_validation, tiny_torch
    typos = noisy_copies(val, 1.0, args.seed)
    both = predictions(classifier.predict_proba(val.texts + typos.texts), val.intents + typos.intents,
                       classifier.taxonomy, Thresholds())
    high = both.priority.true == PRIORITIES.index(Priority.HIGH)
    recall = float((both.p_high[high] >= classifier.thresholds.high_priority).mean())
    assert recall >= args.high_recall_target - 1 / high.sum(), "one ticket of leeway for float differences"


def test_model_card_has_attribution_and_figures(tiny_checkpoint: Path) -> None:
    card = (tiny_checkpoint / "README.md").read_text(encoding="utf-8")
    for needle in ("CC BY 4.0", "PolyAI", "Casanueva", "Efficient Intent Detection", "Intended use",
                   "Limitations", "Intent accuracy", "all-MiniLM-L6-v2"):
        assert needle in card, needle


def test_cli_smoke_training_publishes_a_new_latest(
    data_dir: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_RESULTS_DIR", str(tmp_path / "results"))
    out = tmp_path / "models"
    out.mkdir()
    previous = out / "20000101T000000Z-00000000"
    previous.symlink_to(tiny_checkpoint.resolve(), target_is_directory=True)
    (out / "latest").symlink_to(previous.name)
    result = CliRunner().invoke(main, [
        "--log-json", "train", "--preset", "tiny", "--data", str(data_dir), "--output", str(out),
        "--max-train-examples", "154", "--epochs", "1", "--val-fraction", "0.05", "--no-evaluate",
    ])
    assert result.exit_code == 0, result.output
    published = Path(result.stdout.strip().splitlines()[-1])
    assert (out / "latest").resolve() == published.resolve() != previous.resolve()
    manifest = json.loads((published / "checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["data"]["train"] == 154 and manifest["hyperparameters"]["epochs"] == 1
    assert not list(out.glob(".staging-*"))
    assert (tmp_path / "results" / "metrics" / f"{published.name}.json").is_file()


def test_failed_training_leaves_latest_alone(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="--base-model"):
        run_training(TrainArgs(preset="tiny", data_dir=data_dir, output=tmp_path, base_model=str(tmp_path / "nope")))
    assert not (tmp_path / "latest").exists()
    assert not list(tmp_path.glob(".staging-*")), "the staging folder is removed"


def test_cli_reports_missing_data_actionably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_HUB_DATASET", "triage-tests/no-such-dataset")
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path)])
    assert result.exit_code == 1
    assert "Banking77 not found" in result.output and str(tmp_path / "nowhere") in result.output
    assert "Traceback" not in result.output


def test_weights_from_retunes_a_checkpoint_without_training(
    data_dir: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """New budgets on the same weights: a new version with the source's model file, its split and its name."""
    source = tiny_checkpoint.resolve()
    args = TrainArgs(preset="tiny", data_dir=data_dir, output=tmp_path, weights_from=tiny_checkpoint,
                     scope_flag_budget=0.01)
    published = run_training(args)
    manifest = json.loads((published / "checkpoint.json").read_text(encoding="utf-8"))
    source_manifest = json.loads((source / "checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["weights_from"] == source.name and published.name != source.name
    assert manifest["data"] == source_manifest["data"] and manifest["train_seconds"] == source_manifest["train_seconds"]
    assert (published / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    assert Thresholds.load(published / "thresholds.json").out_of_scope == 0.01  # the only share within the budget


def test_weights_from_refuses_a_checkpoint_trained_on_another_split(
    data_dir: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Another seed would put the checkpoint's training texts into the validation split the thresholds are tuned on."""
    args = TrainArgs(preset="tiny", data_dir=data_dir, output=tmp_path, weights_from=tiny_checkpoint, seed=7)
    with pytest.raises(CheckpointError, match="seed"):
        run_training(args)
    assert not (tmp_path / "latest").exists()
