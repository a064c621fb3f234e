"""Joined feedback → versioned data folders under the data contract → the folder `triage train --feedback` reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.enums import Priority
from schemas.taxonomy import IntentRule, Taxonomy, load_taxonomy
from trainer.data import DataError, Split, TicketData, load_data
from trainer.datacheck import read_folder
from trainer.feedback import feedback_split, merged_folder, snapshot

TAXONOMY = load_taxonomy()


def _journal(folder: Path, rows: list[dict[str, str | None]], name: str = "a.jsonl") -> None:
    (folder / "journal").mkdir(parents=True, exist_ok=True)
    with (folder / "journal" / name).open("a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")


def _row(ticket: str, text: str, label: str | None = None, **extra: str) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "ticket_id": ticket, "text": text, "label": label, "category": "Cards", "priority": "Medium",
        "model_label": "card_arrival", "model_category": "Cards", "model_priority": "Medium",
    }
    return {**row, **extra}


def test_snapshots_are_versioned_deduplicated_and_pass_the_data_check(tmp_path: Path) -> None:
    rows = [_row(f"t-{i}", f"where is my card number {i}", "card_arrival") for i in range(40)]
    rows += [_row("t-0", "where is my card number 0", "lost_or_stolen_card")]  # a later correction wins
    rows += [_row("t-99", "where is my card number 1", "card_arrival")]  # same text as t-1
    rows += [_row("t-50", "category only, confirmed")]  # agrees with the model: its label
    rows += [_row("t-51", "category only, corrected", category="Payments")]  # no label to learn
    rows += [_row("t-52", "a label from elsewhere", "no_such_label")]
    _journal(tmp_path, rows)
    first = snapshot(tmp_path, TAXONOMY, held_out=0.25)
    assert first.path.name == "v0001"
    assert first.train + first.test == 41
    assert first.skipped == {"not_a_label": 2, "duplicate_text": 1}
    assert 0 < first.test < first.train
    train, test = feedback_split(tmp_path, "train"), feedback_split(tmp_path, "test")
    assert not set(train.texts) & set(test.texts)
    labels = dict(zip(train.texts + test.texts, train.intents + test.intents, strict=True))
    assert labels["where is my card number 0"] == "lost_or_stolen_card"
    assert labels["category only, confirmed"] == "card_arrival"
    contents = read_folder(first.path)
    assert {name: len(rows) for name, rows in contents.splits.items()} == {"train": first.train, "test": first.test}
    other = [e for e in contents.errors if "training tickets" not in e.problem]
    assert not other, other  # counts per label: the base data adds the rest
    _journal(tmp_path, [_row("t-200", "one more", "card_arrival")], name="b.jsonl")
    second = snapshot(tmp_path, TAXONOMY, held_out=0.25)
    assert second.path.name == "v0002"
    assert (tmp_path / "versions" / "latest").resolve() == second.path
    held = set(feedback_split(first.path, "test").texts)
    assert held <= set(feedback_split(second.path, "test").texts), "a held-out ticket stays held out"


def test_an_empty_journal_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no usable feedback"):
        snapshot(tmp_path, TAXONOMY)


def test_the_merged_folder_adds_feedback_train_only(tmp_path: Path) -> None:
    _journal(tmp_path, [_row(f"t-{i}", f"my card {i} never came", "card_arrival") for i in range(30)])
    made = snapshot(tmp_path, TAXONOMY, held_out=0.3)
    small = Taxonomy((IntentRule("card_arrival", "Cards", Priority.MEDIUM),
                      IntentRule("lost_or_stolen_card", "Cards", Priority.HIGH)))
    labels = ["card_arrival", "lost_or_stolen_card"] * 6
    base = TicketData(Split([f"base text {i}" for i in range(12)], labels), Split(["test text"], ["card_arrival"]),
                      "inline", small)
    folder = merged_folder(base, tmp_path, weight=2, out=tmp_path / "merged")
    merged = load_data(folder, "unused")
    assert len(merged.train) == 12 + 2 * made.train
    assert merged.test.texts == ["test text"]
    assert not set(feedback_split(tmp_path, "test").texts) & set(merged.train.texts)
