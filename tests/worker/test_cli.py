"""The entry points: `triage worker --help` documents every setting; a missing model fails fast and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from triage.cli import main
from worker.runner import EXIT_SETUP

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_the_settings() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("TRIAGE_BROKERS", "TRIAGE_TOPICS__INCOMING", "TRIAGE_REDIS__TTL_S", "TRIAGE_KAFKA__SASL_PASSWORD"):
        assert name in result.output


# Both entry points run the same main(): one exit code per cause.
ENTRY_POINTS = {
    "python -m worker": [sys.executable, "-m", "worker"],
    "triage worker": [sys.executable, "-c", "from triage.cli import main; main()", "worker"],
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_missing_checkpoint_exits_2_with_the_fix(entry: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update({"TRIAGE_MODEL_DIR": str(tmp_path / "nothing"), "TRIAGE_BROKERS": "127.0.0.1:1"})
    proc = subprocess.run(ENTRY_POINTS[entry], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_SETUP, proc.stderr[-2000:]
    assert "no checkpoint at" in proc.stderr and "triage train" in proc.stderr


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_invalid_settings_exit_2_naming_the_setting(entry: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env["TRIAGE_BATCH_SIZE"] = "0"
    proc = subprocess.run(ENTRY_POINTS[entry], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_SETUP and "batch_size" in proc.stderr
