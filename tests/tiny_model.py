"""The tiny checkpoint the integration tests share: trained once per run, and early under pytest-xdist.

Training takes one to three minutes on 2 cores. Under pytest-xdist the controller starts it in a child process
before the workers start (``tests/conftest.py``), and the workers run the files that need no checkpoint first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["corrupt_weights", "start_training", "trained"]


def trained(root: Path, data_dir: Path) -> Path:
    """``root/latest``, trained under a file lock unless another process already did."""
    from filelock import FileLock

    with FileLock(f"{root}.lock"):
        if not (root / "latest").exists():
            from trainer.config import TrainArgs
            from trainer.train import run_training

            # Every core: left to itself the trainer takes one thread per core idle at its start, which is while
            # the test processes collect, and they are idle again a minute later, waiting for this checkpoint.
            threads = len(os.sched_getaffinity(0))
            run_training(TrainArgs(preset="tiny", data_dir=data_dir, output=root, threads=threads))
    return root / "latest"


def corrupt_weights(folder: Path) -> None:
    """Garbage in every weights file of a checkpoint copy, whichever engine serves it (safetensors, ONNX exports).

    Each file is replaced rather than written through: a copy made of hard links would corrupt its source too.
    """
    for weights in (folder / "model.safetensors", *folder.glob("onnx/*.onnx")):
        weights.unlink()
        weights.write_bytes(b"\x00garbage, not a weights file" * 100)


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
