"""Checkpoint versions, the atomic ``latest`` switch and refusal of incomplete or pickled checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from inference.checkpoint import REQUIRED_FILES, CheckpointError, new_version, publish, resolve_checkpoint


def _staging(root: Path, name: str, files: tuple[str, ...] = REQUIRED_FILES) -> Path:
    folder = root / f".staging-{name}"
    folder.mkdir(parents=True)
    for file in files:
        (folder / file).write_text("{}", encoding="utf-8")
    return folder


def test_versions_sort_by_time_and_differ_by_config() -> None:
    early = new_version({"lr": 1e-4}, now=datetime(2026, 1, 1, tzinfo=UTC))
    late = new_version({"lr": 1e-4}, now=datetime(2026, 1, 2, tzinfo=UTC))
    other = new_version({"lr": 2e-4}, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert sorted([late, early]) == [early, late]
    assert other != early and other[:16] == early[:16]


def test_publish_switches_latest_to_the_newest(tmp_path: Path) -> None:
    first = publish(_staging(tmp_path, "a"), tmp_path, "v1")
    assert resolve_checkpoint(tmp_path / "latest") == first.resolve()
    second = publish(_staging(tmp_path, "b"), tmp_path, "v2")
    assert (tmp_path / "latest").is_symlink()
    assert resolve_checkpoint(tmp_path / "latest") == second.resolve()
    assert first.is_dir(), "older versions stay for rollback"
    assert not list(tmp_path.glob(".latest-*")), "no temporary link is left behind"


def test_half_written_checkpoint_is_never_published(tmp_path: Path) -> None:
    publish(_staging(tmp_path, "a"), tmp_path, "v1")
    partial = _staging(tmp_path, "b", files=("config.json", "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        publish(partial, tmp_path, "v2")
    assert (tmp_path / "latest").resolve() == (tmp_path / "v1").resolve()
    with pytest.raises(CheckpointError, match="never overwritten"):
        publish(_staging(tmp_path, "c"), tmp_path, "v1")


def test_missing_checkpoint_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"triage train --preset quick"):
        resolve_checkpoint(tmp_path / "latest")


def test_incomplete_checkpoint_names_what_is_missing(tmp_path: Path) -> None:
    folder = _staging(tmp_path, "x", files=("config.json", "model.safetensors", "taxonomy.csv"))
    with pytest.raises(CheckpointError, match=r"thresholds\.json.*checkpoint\.json"):
        resolve_checkpoint(folder)


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    files = tuple(f for f in REQUIRED_FILES if f != "model.safetensors") + ("pytorch_model.bin",)
    with pytest.raises(CheckpointError, match="pickled"):
        resolve_checkpoint(_staging(tmp_path, "p", files=files))
