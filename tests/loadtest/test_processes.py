"""Children are stopped as whole process groups, stubborn ones killed, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from inference.environment import flatten_env
from loadtest.processes import ChildProcess, Terminated, leftovers, stop_signals


def _group_gone(pgid: int, within_s: float = 3.0) -> bool:
    """True once no process (zombies included, so allow reaping time) is left in the group."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_stop_ends_the_child_and_its_grandchildren(tmp_path: Path) -> None:
    before = set(leftovers())  # session fixtures (the broker) are children of the test process too
    child = ChildProcess(
        "sleeper", ["sh", "-c", "sleep 300 & sleep 300 & wait"], dict(os.environ), tmp_path / "sleeper.log"
    ).start()
    assert child.pid is not None
    time.sleep(0.3)
    assert not _group_gone(child.pid, within_s=0.1)
    assert any(str(child.pid) in line for line in leftovers())
    child.stop(timeout=5)
    assert _group_gone(child.pid)
    assert set(leftovers()) == before


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
        "time.sleep(300)"
    )
    before = set(leftovers())
    child = ChildProcess(
        "stubborn", [sys.executable, "-c", script], dict(os.environ), tmp_path / "s.log"
    ).start()
    deadline = time.monotonic() + 10
    while "up" not in child.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    code = child.stop(timeout=1.0)
    assert code == -9, "SIGKILLed once SIGTERM went unanswered past the timeout"
    assert set(leftovers()) == before


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"brokers": "h:1", "batch_size": 8}, {"TRIAGE_BROKERS": "h:1", "TRIAGE_BATCH_SIZE": "8"}),
        (
            {"redis": {"enabled": False, "url": "redis://x"}, "device": None},
            {"TRIAGE_REDIS__ENABLED": "false", "TRIAGE_REDIS__URL": "redis://x"},
        ),
    ],
)
def test_worker_settings_become_its_environment_names(
    values: dict[str, object], expected: dict[str, str]
) -> None:
    assert flatten_env(values) == expected


def test_flattened_names_are_read_back_by_the_worker_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from schemas.topics import TopicSettings
    from worker.settings import WorkerSettings

    topics = TopicSettings(
        incoming="a.in",
        enriched="a.out",
        route_prefix="a.r.",
        oncall="a.on",
        review="a.rev",
        deadletter="a.dlq",
    )
    for name, value in flatten_env(
        {"topics": topics.model_dump(), "batch_size": 3, "redis": {"enabled": False}}
    ).items():
        monkeypatch.setenv(name, value)
    settings = WorkerSettings()
    assert settings.topics == topics
    assert settings.batch_size == 3 and settings.redis.enabled is False


@pytest.mark.parametrize(
    ("sig", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_first_stop_signal_interrupts_and_later_ones_let_cleanup_finish(
    sig: signal.Signals, raised: type[BaseException]
) -> None:
    before = signal.getsignal(sig)
    cleaned = False
    with stop_signals():
        try:
            os.kill(os.getpid(), sig)
            time.sleep(1)
            pytest.fail("the first signal did not interrupt")
        except raised:
            os.kill(os.getpid(), sig)
            time.sleep(0.1)
            cleaned = True
    assert cleaned
    assert signal.getsignal(sig) is before
