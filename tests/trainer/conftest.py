"""Trainer fixtures: Banking77 with a thinned test split, a private copy of the tiny checkpoint, a csv writer."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from trainer.data import Split, TicketData, load_data


@pytest.fixture(scope="session")
def banking77(data_dir: Path) -> TicketData:
    return load_data(data_dir, "PolyAI/banking77")


@pytest.fixture(scope="session")
def thin_banking77(banking77: TicketData) -> TicketData:
    """Every 10th test example (all 77 intents, ~300 texts) keeps evaluation tests quick."""
    test = Split(banking77.test.texts[::10], banking77.test.intents[::10])
    return TicketData(banking77.train, test, banking77.source, banking77.taxonomy)


@pytest.fixture
def checkpoint_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A writable copy: evaluate/export add files to a checkpoint, and the session one is shared."""
    target = tmp_path / "models" / tiny_checkpoint.resolve().name
    shutil.copytree(tiny_checkpoint.resolve(), target)
    return target


@pytest.fixture
def write_csv_dir(tmp_path: Path) -> Callable[[Sequence[tuple[str, str]], Sequence[tuple[str, str]]], Path]:
    """Factory: write train.csv/test.csv (text,category) into a fresh folder and return it."""

    def write(train: Sequence[tuple[str, str]], test: Sequence[tuple[str, str]]) -> Path:
        folder = tmp_path / "banking77"
        folder.mkdir(exist_ok=True)
        for name, rows in (("train.csv", train), ("test.csv", test)):
            with (folder / name).open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["text", "category"])
                writer.writerows(rows)
        return folder

    return write

