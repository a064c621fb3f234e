"""Child processes that never outlive the command: each in its own process group, stopped as a group.

Children run in a new session so a terminal's Ctrl-C reaches only the parent, which then stops them in order
(SIGTERM to the whole group, SIGKILL after a timeout); ``stop_signals`` turns SIGTERM to the parent into the
same orderly exit, and an ``atexit`` hook kills whatever still runs if the parent leaves another way.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import psutil
import structlog

__all__ = ["ChildProcess", "Terminated", "leftovers", "stop_signals"]

log = structlog.get_logger(__name__)

_RUNNING: set[ChildProcess] = set()
_GROUPS: list[int] = []


class Terminated(Exception):
    """The parent received SIGTERM; raised in the main thread so ``finally`` blocks stop the children."""


class ChildProcess:
    """One child command with its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.log_path, self.cwd = name, list(argv), dict(env), log_path, cwd
        self.preexec_fn = preexec_fn
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                          stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=self.preexec_fn)
        _RUNNING.add(self)
        _GROUPS.append(self._proc.pid)
        log.info("child_started", name=self.name, pid=self._proc.pid, log=str(self.log_path))
        return self

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit on its own (``subprocess.TimeoutExpired`` after ``timeout``)."""
        assert self._proc is not None
        code = self._proc.wait(timeout)
        _RUNNING.discard(self)
        return code

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the child's whole process group, SIGKILL it after ``timeout``; returns the exit code."""
        if self._proc is None:
            return None
        pid = self._proc.pid
        _signal_group(pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("child_killed", name=self.name, pid=pid, after_s=timeout)
        _signal_group(pid, signal.SIGKILL)  # grandchildren that linger after the child exits die too
        self._proc.wait(5)
        deadline = time.monotonic() + 5.0  # SIGKILL is delivered asynchronously: until the members have exited
        while _group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _RUNNING.discard(self)
        log.info("child_stopped", name=self.name, pid=pid, code=self._proc.returncode)
        return self._proc.returncode

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, sig)


def leftovers() -> list[str]:
    """Processes this one started that still run (zombies don't count): live children, and members of groups it
    created. Empty after a clean shutdown."""
    alive = {p.pid: p for p in psutil.Process().children(recursive=True) if _running(p)}
    for pgid in _GROUPS:
        alive.update((p.pid, p) for p in _group_members(pgid))
    return [f"{pid} {p.name()}" for pid, p in sorted(alive.items())]


def _group_members(pgid: int) -> list[psutil.Process]:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return []
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError):
            if os.getpgid(process.pid) == pgid and _running(process):
                members.append(process)
    return members


def _running(process: psutil.Process) -> bool:
    """Not exited; a zombie has exited and waits to be reaped."""
    with contextlib.suppress(psutil.Error):
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    return False


@atexit.register
def _kill_leftovers() -> None:
    for child in list(_RUNNING):
        if child.pid is not None:
            _signal_group(child.pid, signal.SIGKILL)


@contextmanager
def stop_signals() -> Iterator[None]:
    """The first SIGINT/SIGTERM raises ``KeyboardInterrupt``/``Terminated`` in the main thread, so every ``finally``
    up the stack runs and stops the children; later ones are ignored, or a second Ctrl-C would abort that cleanup
    and leave them running. The old handlers come back on exit."""
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            log.warning("already_stopping", signal=signal.Signals(signum).name)
            return
        stopping = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(f"received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
