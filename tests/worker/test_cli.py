"""The entry points: `triage worker --help` documents every setting; a missing model fails fast and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from triage.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_the_settings() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("TRIAGE_BROKERS", "TRIAGE_TOPICS__INCOMING", "TRIAGE_REDIS__TTL_S", "TRIAGE_KAFKA__SASL_PASSWORD"):
        assert name in result.output


def test_missing_checkpoint_exits_2_with_the_fix(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update({"TRIAGE_MODEL_DIR": str(tmp_path / "nothing"), "TRIAGE_BROKERS": "127.0.0.1:1"})
    proc = subprocess.run(
        [sys.executable, "-m", "worker"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "no checkpoint at" in proc.stderr and "triage train" in proc.stderr


def test_invalid_settings_are_reported(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env["TRIAGE_BATCH_SIZE"] = "0"
    proc = subprocess.run(
        [sys.executable, "-m", "worker"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0 and "batch_size" in proc.stderr
