"""The tests' tiny checkpoint: trained once per run into a folder, however many processes ask (a file lock).

``tests/conftest.py`` starts this module in the background as a session begins, so the tests that need no
checkpoint run while it trains (about 1.5 minutes on 2 cores); the ``tiny_checkpoint`` fixture takes the same
lock, so it waits for that training instead of starting its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

from filelock import FileLock

__all__ = ["ensure_tiny_checkpoint"]


def ensure_tiny_checkpoint(root: Path, data_dir: Path) -> Path:
    """``root/latest``, trained with the ``tiny`` preset unless a process did it first."""
    with FileLock(f"{root}.lock"):
        if not (root / "latest").exists():
            from trainer.config import TrainArgs
            from trainer.train import run_training

            run_training(TrainArgs(preset="tiny", data_dir=data_dir, output=root))
    return root / "latest"


if __name__ == "__main__":
    ensure_tiny_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]))
