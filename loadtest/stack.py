"""Start the worker as a child process (``python -m worker``) configured through ``TRIAGE_*`` variables."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.environment import flatten_env
from inference.errors import UserError
from loadtest.broker import free_port
from loadtest.processes import ChildProcess

__all__ = ["RunningWorker", "WorkerNotReady", "running_feedback", "running_worker", "wait_ready"]


class WorkerNotReady(UserError):
    """The worker exited or did not report ready in time; the message carries the end of its log."""


@dataclass(frozen=True)
class RunningWorker:
    """A worker that reported ready: its process, its ``/metrics`` URL and what its ``/health`` said."""

    child: ChildProcess
    metrics_url: str
    health: dict[str, Any]


@contextmanager
def running_worker(settings: Mapping[str, Any], log_path: Path) -> Iterator[RunningWorker]:
    """``python -m worker`` with ``settings`` (nested WorkerSettings fields) on top of this environment, once ready;
    /health and /metrics on a free loopback port, Faust state beside its log, no hot reload (one run, one
    checkpoint). On the way out it is stopped with its whole process group."""
    port = free_port()
    own = {"web_host": "127.0.0.1", "web_port": port, "state_dir": log_path.with_suffix(".state"),
           "reload_interval_s": 0}
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **flatten_env({**own, **settings})}
    child = ChildProcess("worker", [sys.executable, "-m", "worker"], env, log_path).start()
    try:
        yield RunningWorker(child, f"http://127.0.0.1:{port}/metrics", wait_ready(child, port))
    finally:
        child.stop()


@contextmanager
def running_feedback(settings: Mapping[str, Any], log_path: Path) -> Iterator[str]:
    """``python -m feedback`` with ``settings`` (nested FeedbackSettings fields), once its /metrics answers; the
    metrics URL. Stopped with its process group on the way out."""
    port = free_port()
    own = {"feedback": {"web_host": "127.0.0.1", "web_port": port, "state_dir": str(log_path.with_suffix(".state"))}}
    merged = {**settings, "feedback": {**own["feedback"], **settings.get("feedback", {})}}
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **flatten_env(merged)}
    child = ChildProcess("feedback", [sys.executable, "-m", "feedback"], env, log_path).start()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            if not child.running or time.monotonic() > deadline:
                raise WorkerNotReady(f"feedback process not serving {url}:\n{child.tail(20)}")
            time.sleep(0.3)
        yield url
    finally:
        child.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
            return bool(response.status == 200)
    except OSError:
        return False


def _health(url: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of ``/health`` (not ready: 503 with the reason); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(ValueError):
            return exc.code, json.loads(exc.read() or b"{}")
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def wait_ready(worker: ChildProcess, port: int, timeout_s: float = 180.0) -> dict[str, Any]:
    """Poll ``/health`` until the worker says ready and return its body; ``WorkerNotReady`` when it exits first or
    is not ready within ``timeout_s``."""
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while worker.running and time.monotonic() < deadline:
        status, body = _health(url)
        if status == 200:
            return body
        time.sleep(0.5)
    why = (f"was not ready within {timeout_s:.0f}s ({url} said {body or 'nothing'})" if worker.running
           else f"exited with code {worker.returncode} before it was ready")
    raise WorkerNotReady(f"the worker {why}; last lines of {worker.log_path}:\n{worker.tail()}")
