"""Banking77 loading from a local folder, the stratified split, and the error when nothing works."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from schemas.taxonomy import load_taxonomy
from trainer.data import Banking77, DataNotFoundError, Split, load_banking77, stratified_split, subsample

ROWS = [("I lost my card", "lost_or_stolen_card"), ("Where is my card?", "card_arrival")] * 10


def test_reads_train_and_test_csv(write_csv_dir) -> None:
    folder = write_csv_dir(ROWS, ROWS[:4])
    data = load_banking77(folder, "unused/hub-id", load_taxonomy())
    assert (len(data.train), len(data.test)) == (20, 4)
    assert data.train.texts[0] == "I lost my card" and data.train.intents[1] == "card_arrival"
    assert data.source == str(folder)


def test_nothing_found_names_every_source_tried(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as info:
        load_banking77(missing, "triage-tests/no-such-dataset")
    message = str(info.value)
    assert str(missing) in message and "triage-tests/no-such-dataset" in message
    assert "--data" in message and "TRIAGE_DATA_DIR" in message


def test_bad_local_folder_says_why(write_csv_dir, tmp_path: Path) -> None:
    folder = write_csv_dir(ROWS, ROWS)
    (folder / "test.csv").unlink()
    with pytest.raises(DataNotFoundError, match="no test.csv"):
        load_banking77(folder, "triage-tests/no-such-dataset")


def test_intents_outside_the_taxonomy_are_refused(write_csv_dir) -> None:
    folder = write_csv_dir([("hello", "not_an_intent")] * 3, [("hello", "not_an_intent")])
    with pytest.raises(DataNotFoundError, match="not_an_intent"):
        load_banking77(folder, "unused", load_taxonomy())


def test_validation_split_is_stratified_and_disjoint(banking77: Banking77) -> None:
    train, val = stratified_split(banking77.train, 0.1, seed=7)
    assert len(train) + len(val) == len(banking77.train)
    assert set(val.intents) == set(banking77.train.intents)
    counts, val_counts = Counter(banking77.train.intents), Counter(val.intents)
    assert all(abs(val_counts[i] - 0.1 * counts[i]) <= 1 for i in counts)
    again, _ = stratified_split(banking77.train, 0.1, seed=7)
    assert again == train, "the split is reproducible from the seed"


def test_subsample_keeps_every_class() -> None:
    data = Split([f"t{i}" for i in range(300)], [f"c{i % 3}" for i in range(300)])
    small = subsample(data, 30, seed=0)
    assert len(small) == 30 and Counter(small.intents) == {"c0": 10, "c1": 10, "c2": 10}
    assert subsample(data, None, seed=0) is data
