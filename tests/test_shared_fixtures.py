"""The session fixtures every integration test shares hold on a busy machine, and fail once, clearly, when they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_model import TinyTrainingFailed, trained
from trainer import train
from trainer.config import TrainArgs

_REPO = Path(__file__).resolve().parents[1]

_CONFTEST = '''
import time

import pytest

from tests.conftest import pytest_configure, pytest_runtest_protocol  # the hooks under test


@pytest.fixture(scope="session")
def tiny_checkpoint():
    time.sleep(4)  # a training that takes longer than one test may
    return "trained"
'''

_TESTS = '''
import time


def test_waits_for_the_shared_fixture(tiny_checkpoint):
    assert tiny_checkpoint == "trained"


def test_its_own_time_still_counts(tiny_checkpoint):
    time.sleep(5)
'''


def test_the_wait_for_a_shared_fixture_does_not_count_against_the_test_timeout(tmp_path: Path) -> None:
    """A 2 s timeout: the first test waits 4 s for the fixture and passes; a test slow on its own still times out."""
    suite = tmp_path / "tests"  # below the rootdir, like this repository's: conftest hooks there are path-scoped
    suite.mkdir()
    (suite / "conftest.py").write_text(_CONFTEST)
    (suite / "test_slow_fixture.py").write_text(_TESTS)
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "2", "-o", "addopts=",
         "-n", "1", "--rootdir", str(tmp_path), "tests"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    out = done.stdout + done.stderr
    assert "1 failed, 1 passed" in out, out
    assert "test_its_own_time_still_counts" in out.split("short test summary")[-1], out


def test_a_failed_training_fails_every_later_request_at_once_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def run_training(args: TrainArgs) -> None:
        calls.append(args.output)
        raise FileNotFoundError(f"no train.csv in {args.data_dir}")

    monkeypatch.setattr(train, "run_training", run_training)
    root = tmp_path / "models"
    with pytest.raises(TinyTrainingFailed, match="training the tiny checkpoint failed .*no train.csv"):
        trained(root, tmp_path / "no-data")
    with pytest.raises(TinyTrainingFailed, match="(?s)failed earlier in this run.*no train.csv"):
        trained(root, tmp_path / "no-data")
    assert calls == [root], "the second request trained again"
