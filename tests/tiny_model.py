"""The tiny checkpoint the integration tests share: trained once per run, and early under pytest-xdist.

Training takes one to three minutes on 2 cores. Tests that need no checkpoint run first (``tests/conftest.py``
orders them so), and the first xdist worker trains in a child process meanwhile, instead of one worker
training while the other waits on the lock.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["start_training", "trained"]


def trained(root: Path, data_dir: Path) -> Path:
    """``root/latest``, trained under a file lock unless another process already did."""
    from filelock import FileLock

    from trainer.config import TrainArgs
    from trainer.train import run_training

    with FileLock(f"{root}.lock"):
        if not (root / "latest").exists():
            run_training(TrainArgs(preset="tiny", data_dir=data_dir, output=root))
    return root / "latest"


def start_training(root: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    """``trained`` in a child process; whoever asks for the checkpoint meanwhile waits on the lock, and trains
    itself (showing the error) if the child failed."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / "tiny-training.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "tests.tiny_model", str(root), str(data_dir)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=Path(__file__).resolve().parents[1])


if __name__ == "__main__":
    trained(Path(sys.argv[1]), Path(sys.argv[2]))
