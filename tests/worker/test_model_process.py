"""The model in a child process: same answers as in process, load errors surface, restarts, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from triage.checkpoint import CheckpointError
from worker.inference import load_predictor
from worker.model_process import ProcessPredictor
from worker.settings import WorkerSettings

TEXTS = ["my card was stolen", "how do I top up by bank transfer?", "where is my new card"]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def remote(tiny_checkpoint: Path) -> Iterator[ProcessPredictor]:
    predictor = load_predictor(WorkerSettings(model_dir=tiny_checkpoint, torch_threads=1))
    assert isinstance(predictor, ProcessPredictor)
    yield predictor
    predictor.close()


def test_answers_like_the_model_in_process(remote: ProcessPredictor, tiny_checkpoint: Path) -> None:
    local = load_predictor(WorkerSettings(model_dir=tiny_checkpoint, model_process=False))
    assert not isinstance(local, ProcessPredictor)
    assert remote.version == local.version
    here = local.predict(TEXTS)
    there = remote.predict(TEXTS)
    assert [t.intent for t in there] == [t.intent for t in here]
    assert [t.confidence.intent for t in there] == pytest.approx([t.confidence.intent for t in here], abs=1e-5)
    assert remote.pid != os.getpid()


def test_a_killed_child_is_restarted_on_the_next_call(remote: ProcessPredictor) -> None:
    first = remote.pid
    assert first is not None
    expected = [t.intent for t in remote.predict(TEXTS)]
    os.kill(first, signal.SIGKILL)
    assert _wait_gone(first)
    assert [t.intent for t in remote.predict(TEXTS)] == expected
    assert remote.pid not in (None, first)


def test_a_bad_checkpoint_raises_where_the_model_is_asked_for(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(CheckpointError):
        ProcessPredictor(WorkerSettings(model_dir=folder), folder)


def test_close_stops_the_child(tiny_checkpoint: Path) -> None:
    predictor = ProcessPredictor(WorkerSettings(model_dir=tiny_checkpoint, torch_threads=1))
    pid = predictor.pid
    assert pid is not None and _alive(pid)
    predictor.close()
    assert _wait_gone(pid)


def test_the_child_and_its_fork_server_exit_when_the_worker_is_killed(tiny_checkpoint: Path) -> None:
    """SIGKILL gives the worker no chance to clean up: both must notice their closed pipes by themselves."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from worker.model_process import ProcessPredictor\n"
        "from worker.settings import WorkerSettings\n"
        f"p = ProcessPredictor(WorkerSettings(model_dir=Path({str(tiny_checkpoint)!r}), torch_threads=1))\n"
        "print('model-pid', p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = next(line for line in parent.stdout if line.startswith("model-pid"))
        child = int(line.split()[1])
        descendants = [p.pid for p in psutil.Process(parent.pid).children(recursive=True)]
        assert child in descendants and len(descendants) >= 2, "the model process, forked by the fork server"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        left = [pid for pid in descendants if not _wait_gone(pid)]
        assert not left, f"processes {left} outlived their worker (model process {child})"
    finally:
        parent.kill()
        parent.wait()
