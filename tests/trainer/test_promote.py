"""`triage promote`: side-by-side scores, latest switched only for a candidate that is not worse."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainer.data import Split, TicketData
from trainer.promote import Score, decide
from triage.cli import main


@pytest.fixture
def models(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private models root whose latest is a copy of the tiny checkpoint (the session's is shared)."""
    root = tmp_path / "models"
    current = tiny_checkpoint.resolve()
    shutil.copytree(current, root / current.name)
    os.symlink(current.name, root / "latest")
    return root


@pytest.fixture
def thin_data(banking77: TicketData, tmp_path: Path) -> Path:
    """Banking77's train and every 10th test ticket, as a data folder."""
    folder = tmp_path / "thin"
    folder.mkdir()
    for name, split in (("train", banking77.train), ("test", Split(banking77.test.texts[::10],
                                                                     banking77.test.intents[::10]))):
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "category"])
            writer.writerows(zip(split.texts, split.intents, strict=True))
    return folder


@pytest.fixture
def held_out_feedback(banking77: TicketData, tmp_path: Path) -> Path:
    """A feedback folder whose held-out part is 144 test tickets (every 20th, shifted from the thin test split)."""
    folder = tmp_path / "feedback"
    folder.mkdir()
    rows = list(zip(banking77.test.texts[5::20], banking77.test.intents[5::20], strict=True))
    for name, part in (("train", rows[:10]), ("test", rows[10:])):
        lines = [json.dumps({"text": text, "label": label}) for text, label in part]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _promote(candidate: Path, models: Path, data: Path, feedback: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["promote", str(candidate), "--latest", str(models / "latest"), "--data",
                                       str(data), "--feedback", str(feedback), "--high-recall-bar", "0.5"])
    return result.exit_code, result.output


def test_an_equal_candidate_is_promoted_atomically(models: Path, thin_data: Path, held_out_feedback: Path) -> None:
    current = (models / "latest").resolve()
    candidate = models / "candidate-copy"
    shutil.copytree(current, candidate)
    code, output = _promote(candidate, models, thin_data, held_out_feedback)
    assert code == 0, output
    assert "held-out feedback (n=144)" in output and "base test (n=308)" in output
    assert (models / "latest").resolve() == candidate.resolve()


def test_a_candidate_with_shuffled_labels_is_refused(models: Path, thin_data: Path, held_out_feedback: Path) -> None:
    """The current weights with their output labels shuffled: what training on shuffled labels yields, without
    the minutes of training (every prediction names a wrong label)."""
    current = (models / "latest").resolve()
    candidate = models / "candidate-shuffled"
    shutil.copytree(current, candidate)
    config = json.loads((candidate / "config.json").read_text(encoding="utf-8"))
    names = list(config["id2label"].values())
    random.Random(0).shuffle(names)
    config["id2label"] = dict(zip(config["id2label"], names, strict=True))
    config["label2id"] = {name: int(i) for i, name in config["id2label"].items()}
    (candidate / "config.json").write_text(json.dumps(config), encoding="utf-8")
    code, output = _promote(candidate, models, thin_data, held_out_feedback)
    assert code == 1, output
    assert "refused: " in output and "category accuracy" in output
    assert (models / "latest").resolve() == current


def test_the_decision_needs_every_set_and_the_bar() -> None:
    good, worse = Score(100, 0.9, 0.8, 0.95, 40), Score(100, 0.85, 0.8, 0.99, 40)
    assert decide({"a": {"candidate": good, "current": good}}, 0.9, 0.0).promote
    refused = decide({"a": {"candidate": good, "current": good}, "b": {"candidate": worse, "current": good}}, 0.9, 0.0)
    assert not refused.promote and refused.reasons[0].startswith("b: category accuracy 85.00%")
    assert decide({"b": {"candidate": worse, "current": good}}, 0.9, 0.06).promote, "within the tolerance"
    low = decide({"a": {"candidate": Score(100, 0.9, 0.9, 0.8, 40), "current": good}}, 0.9, 0.0)
    assert low.reasons == ["a: High recall 80.00% is below the bar 90.00%"]
    few = decide({"a": {"candidate": Score(100, 0.9, 0.9, 0.6, 5), "current": good}}, 0.9, 0.0)
    assert few.promote, "recall over 5 High tickets is not judged"
