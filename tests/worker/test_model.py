"""The model client: same answers as in process, deadlines, restarts, a model that cannot come back, no orphans."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from inference.checkpoint import MANIFEST, CheckpointError, resolve_checkpoint
from worker.metrics import WorkerMetrics
from worker.model import Engine, ModelClient, _preload, load_predictor
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


@pytest.fixture
def checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny checkpoint a test may take away and give back."""
    folder = tmp_path / "v1"
    shutil.copytree(resolve_checkpoint(tiny_checkpoint), folder)
    return folder


def _settings(model_dir: Path, **overrides: object) -> WorkerSettings:
    return WorkerSettings(model_dir=model_dir, torch_threads=1, **overrides)  # type: ignore[arg-type]


def test_answers_like_the_model_in_process(checkpoint: Path) -> None:
    engine = Engine(_settings(checkpoint), checkpoint)
    try:
        local = load_predictor(_settings(checkpoint))
        assert engine.version == local.version and engine.pid not in (None, os.getpid())
        there = engine.submit(TEXTS).result()
        here = local.predict(TEXTS)
        assert [t.intent for t in there] == [t.intent for t in here]
        assert [t.confidence.intent for t in there] == pytest.approx([t.confidence.intent for t in here], abs=1e-5)
    finally:
        engine.close()


def test_a_bad_checkpoint_raises_where_the_model_is_asked_for(checkpoint: Path) -> None:
    """Complete but unreadable: loading fails in the model process, and that error reaches the caller."""
    (checkpoint / MANIFEST).write_text("{ not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="unreadable manifest"):
        Engine(_settings(checkpoint), checkpoint)


def test_a_killed_or_hung_model_process_is_restarted_and_the_call_retried(checkpoint: Path) -> None:
    """A stopped (SIGSTOP) model answers nothing: the deadline kills it, a new one answers, /metrics counts it."""
    metrics = WorkerMetrics()
    client = ModelClient(_settings(checkpoint, model_call_timeout_s=2.0), metrics)

    async def run() -> list[int | None]:
        engine = await client.load(checkpoint)
        expected = [t.intent for t in await client.predict(engine, TEXTS)]
        pids = [engine.pid]
        assert pids[0] is not None
        os.kill(pids[0], signal.SIGKILL)
        assert [t.intent for t in await client.predict(engine, TEXTS)] == expected
        pids.append(engine.pid)
        assert pids[1] is not None
        os.kill(pids[1], signal.SIGSTOP)
        started = time.monotonic()
        assert [t.intent for t in await client.predict(engine, TEXTS)] == expected
        assert time.monotonic() - started < 30
        pids.append(engine.pid)
        client.close()
        return pids

    try:
        pids = asyncio.run(run())
    finally:
        client.close()
    assert len(set(pids)) == 3
    assert metrics.model_restarts.labels(reason="died")._value.get() == 1
    assert metrics.model_restarts.labels(reason="timeout")._value.get() == 1
    assert client.problem is None


def test_a_model_that_cannot_come_back_holds_its_calls_and_says_why_instead_of_failing_tickets(
    checkpoint: Path, tmp_path: Path
) -> None:
    """The infrastructure's fault (checkpoint gone, out of memory) must never become a ticket's dead letter."""
    client = ModelClient(_settings(checkpoint), WorkerMetrics())
    hidden = tmp_path / "hidden"

    async def run() -> tuple[str | None, int]:
        engine = await client.load(checkpoint)
        pid = engine.pid
        assert pid is not None
        checkpoint.rename(hidden)
        os.kill(pid, signal.SIGKILL)
        call = asyncio.create_task(client.predict(engine, TEXTS))
        await asyncio.sleep(4)
        assert not call.done(), "the call waits for the model instead of failing"
        problem = client.problem
        hidden.rename(checkpoint)
        answers = await asyncio.wait_for(call, 60)
        return problem, len(answers)

    try:
        problem, answered = asyncio.run(run())
    finally:
        client.close()
    assert problem is not None and "cannot be restarted" in problem and "CheckpointError" in problem
    assert answered == len(TEXTS) and client.problem is None


def test_close_stops_the_child(checkpoint: Path) -> None:
    engine = Engine(_settings(checkpoint), checkpoint)
    pid = engine.pid
    assert pid is not None and _alive(pid)
    engine.close()
    assert _wait_gone(pid)


def test_the_child_and_its_fork_server_exit_when_the_worker_is_killed(checkpoint: Path) -> None:
    """SIGKILL gives the worker no chance to clean up: both must notice by themselves."""
    script = (
        "import time\n"
        "from pathlib import Path\n"
        "from worker.model import Engine\n"
        "from worker.settings import WorkerSettings\n"
        f"folder = Path({str(checkpoint)!r})\n"
        "e = Engine(WorkerSettings(model_dir=folder, torch_threads=1), folder)\n"
        "print('model-pid', e.pid, flush=True)\n"
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


@pytest.mark.parametrize(("backend", "imports_torch"), [("onnx", False), ("onnx-int8", False), ("torch", True)])
def test_the_fork_server_imports_torch_only_where_it_serves(tiny_checkpoint: Path, backend: str,
                                                            imports_torch: bool) -> None:
    settings = WorkerSettings(model_dir=tiny_checkpoint, model_backend=backend)
    assert ("inference.torch_model" in _preload(settings, None)) is imports_torch
