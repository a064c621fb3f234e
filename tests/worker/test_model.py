"""The model client: same answers as in process, deadlines, restarts, a model that cannot come back, no orphans;
a text that kills the model costs only its own ticket, a model that dies on every call costs none."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import psutil
import pytest

from inference.checkpoint import MANIFEST, CheckpointError, resolve_checkpoint
from schemas.enums import ErrorCode
from schemas.messages import DeadLetter, EnrichedTicket, Triage
from worker.cache import TriageCache
from worker.metrics import WorkerMetrics
from worker.model import Engine, ModelClient, ModelCrashed, _preload, load_predictor
from worker.pipeline import TriagePipeline
from worker.records import InRecord
from worker.settings import RedisSettings, WorkerSettings

TEXTS = ["my card was stolen", "how do I top up by bank transfer?", "where is my new card"]
POISON = "a text the model process dies on"


def _dies_on(monkeypatch: pytest.MonkeyPatch, fatal: Callable[[list[str]], bool]) -> list[int]:
    """The real model process is SIGKILLed as every call whose texts are ``fatal`` reaches it: a crash, as a poison
    input, the OOM killer or a broken native library causes one. Returns the pids killed.

    The kill comes before the call is handed over: killed just after, the tiny model can answer a one-text call
    before this thread gets the GIL back to kill it.
    """
    submit, killed = Engine.submit, []

    def dying(engine: Engine, texts: list[str]) -> Future[list[Triage]]:
        if fatal(texts) and engine.pid is not None:
            killed.append(engine.pid)
            engine.kill()
        return submit(engine, texts)

    monkeypatch.setattr(Engine, "submit", dying)
    return killed


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
        # The watchdog reads the process twice a second: a starved tick may still say "stuck" as the call returns.
        deadline = time.monotonic() + 5
        while client.problem is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert client.problem is None, "the problem clears once the restarted process answers"
        client.close()
        return pids

    try:
        pids = asyncio.run(run())
    finally:
        client.close()
    assert len(set(pids)) == 3
    assert metrics.model_restarts.labels(reason="died")._value.get() == 1
    assert metrics.model_restarts.labels(reason="timeout")._value.get() == 1


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


def test_a_text_that_kills_the_model_alone_is_its_own_dead_letter(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ModelClient(_settings(checkpoint), WorkerMetrics())
    killed = _dies_on(monkeypatch, lambda texts: POISON in texts)

    async def run() -> list[str]:
        engine = await client.load(checkpoint)
        with pytest.raises(ModelCrashed, match="died twice"):
            await client.predict(engine, [POISON], alone=True)
        return [t.intent for t in await client.predict(engine, TEXTS)]

    try:
        assert len(asyncio.run(run())) == len(TEXTS)
    finally:
        client.close()
    assert len(killed) == 2 and client.problem is None


def test_a_model_that_dies_on_every_call_holds_the_call_until_it_answers_again(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dead on every call for 8 s: no text is blamed, ``problem`` says so within 5 s, the call then succeeds."""
    client = ModelClient(_settings(checkpoint), WorkerMetrics())
    dying = [True]
    killed = _dies_on(monkeypatch, lambda texts: dying[0])

    async def run() -> tuple[float, int]:
        engine = await client.load(checkpoint)
        dying[0] = True
        call = asyncio.create_task(client.predict(engine, TEXTS, alone=True))
        started = time.monotonic()
        while client.problem is None and time.monotonic() - started < 30:
            await asyncio.sleep(0.05)
        noticed = time.monotonic() - started
        await asyncio.sleep(8)
        dying[0] = False
        return noticed, len(await asyncio.wait_for(call, 60))

    try:
        noticed, answered = asyncio.run(run())
    finally:
        client.close()
    assert noticed < 5 and answered == len(TEXTS), f"problem after {noticed:.1f} s"
    assert len(killed) >= 3 and client.problem is None


def test_merged_calls_never_cost_an_innocent_ticket_a_dead_letter(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two batches in flight at once, one with a text that kills the model: their calls merge, the retries must not."""
    settings = _settings(checkpoint, redis=RedisSettings(backend="memory"))
    metrics = WorkerMetrics()
    client = ModelClient(settings, metrics)
    pipeline = TriagePipeline(settings, TriageCache(settings.redis, metrics), client, metrics)
    _dies_on(monkeypatch, lambda texts: POISON in texts)

    def batch(offset: int, text: str) -> list[InRecord]:
        value = json.dumps({"ticket_id": f"t{offset}", "text": text}).encode()
        return [InRecord("tickets.incoming", 0, offset, f"t{offset}".encode(), value, None)]

    async def run() -> list[bytes]:
        await client.load(checkpoint)
        outcomes = await asyncio.gather(pipeline.process(batch(0, POISON)), pipeline.process(batch(1, TEXTS[0])))
        return [outcome[0].records[0].value for outcome in outcomes]

    try:
        poisoned, innocent = asyncio.run(run())
    finally:
        client.close()
    assert DeadLetter.model_validate_json(poisoned).error.code is ErrorCode.MODEL_CRASHED
    assert EnrichedTicket.model_validate_json(innocent).ticket_id == "t1"


def test_a_load_past_its_deadline_fails_and_says_which_setting_bounds_it(checkpoint: Path) -> None:
    """A model process that does not finish loading in ``model_load_timeout_s`` is killed; the caller hears why."""
    with pytest.raises(TimeoutError, match="did not load .* within 0.01 s .*TRIAGE_MODEL_LOAD_TIMEOUT_S"):
        Engine(_settings(checkpoint, model_load_timeout_s=0.01), checkpoint)


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
