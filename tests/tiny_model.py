"""The tiny checkpoint the integration tests share: trained once per run, and early under pytest-xdist.

Training takes one to three minutes on 2 cores, more beside other CPU-bound jobs. Under pytest-xdist the
controller starts it in a child process before the workers start (``tests/conftest.py``), and the workers run the
files that need no checkpoint first. A training that fails leaves ``<root>.failed`` behind, so every process that
asks afterwards fails at once with the same error instead of training again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["TRAINING_WAIT_S", "TinyTrainingFailed", "corrupt_weights", "start_training", "trained"]

TRAINING_WAIT_S = 40 * 60
"""How long a process waits for another one's training before it gives up (a slow machine, not a hang)."""


class TinyTrainingFailed(RuntimeError):
    """Training the tiny checkpoint failed, here or in another process of the run: no test that needs it can run."""


def trained(root: Path, data_dir: Path, **overrides: Any) -> Path:
    """``root/latest``, trained under a file lock unless another process already did (or already failed).

    ``overrides`` are ``TrainArgs`` fields that replace the tiny preset's (a test that only routes can train less).

    Raises:
        TinyTrainingFailed: This or an earlier training failed; says why and where the full error is.
    """
    from filelock import FileLock, Timeout

    failed = Path(f"{root}.failed")
    try:
        with FileLock(f"{root}.lock", timeout=TRAINING_WAIT_S):
            if failed.exists():
                raise TinyTrainingFailed(f"training the tiny checkpoint failed earlier in this run ({failed}):\n"
                                         + failed.read_text(encoding="utf-8"))
            if not (root / "latest").exists():
                _train(root, data_dir, failed, overrides)
    except Timeout as exc:
        raise TinyTrainingFailed(f"the tiny checkpoint at {root} was not trained within {TRAINING_WAIT_S} s "
                                 f"(see {root.parent / 'tiny-training.log'})") from exc
    return root / "latest"


def _train(root: Path, data_dir: Path, failed: Path, overrides: dict[str, Any]) -> None:
    from trainer.config import TrainArgs
    from trainer.train import run_training

    # Every core: left to itself the trainer takes one thread per core idle at its start, which is while
    # the test processes collect, and they are idle again a minute later, waiting for this checkpoint.
    threads = len(os.sched_getaffinity(0))
    try:
        run_training(TrainArgs(preset="tiny", data_dir=data_dir, output=root, threads=threads, **overrides))
    except Exception as exc:
        failed.write_text("".join(traceback.format_exception(exc, limit=-5)), encoding="utf-8")
        raise TinyTrainingFailed(f"training the tiny checkpoint failed (kept in {failed}): "
                                 f"{type(exc).__name__}: {exc}") from exc


def corrupt_weights(folder: Path) -> None:
    """Garbage in every weights file of a checkpoint copy, whichever engine serves it (safetensors, ONNX exports).

    Each file is replaced rather than written through: a copy made of hard links would corrupt its source too.
    """
    for weights in (folder / "model.safetensors", *folder.glob("onnx/*.onnx")):
        weights.unlink()
        weights.write_bytes(b"\x00garbage, not a weights file" * 100)


def start_training(root: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    """``trained`` in a child process; whoever asks for the checkpoint meanwhile waits on the lock, and fails
    with the child's error if it failed."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / "tiny-training.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "tests.tiny_model", str(root), str(data_dir)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=Path(__file__).resolve().parents[1])


if __name__ == "__main__":
    trained(Path(sys.argv[1]), Path(sys.argv[2]))
