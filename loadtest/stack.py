"""Start the worker as a child process (``python -m worker``) configured through ``TRIAGE_*`` variables."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from loadtest.processes import ChildProcess
from worker.settings import RedisSettings

__all__ = ["WorkerNotReady", "flatten_env", "redis_reachable", "start_worker", "wait_ready"]

log = structlog.get_logger(__name__)


class WorkerNotReady(RuntimeError):
    """The worker exited or did not report ready in time; the message carries the end of its log."""


def flatten_env(values: Mapping[str, Any], prefix: str = "TRIAGE_") -> dict[str, str]:
    """``{"redis": {"url": u}}`` → ``{"TRIAGE_REDIS__URL": u}``: the worker's own settings names."""
    env: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key.upper()}"
        if isinstance(value, Mapping):
            env.update(flatten_env(value, f"{name}__"))
        elif value is not None:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def start_worker(
    overrides: Mapping[str, Any], log_path: Path, base_env: Mapping[str, str] | None = None
) -> ChildProcess:
    """Launch ``python -m worker`` with ``overrides`` (WorkerSettings field names) on top of ``base_env``.

    Args:
        overrides: Nested WorkerSettings values, e.g. ``{"brokers": b, "topics": {...}, "batch_size": 32}``.
        log_path: The worker's JSON log goes here.
        base_env: Environment to start from (default: this process's).
    """
    env = {**(os.environ if base_env is None else base_env), **flatten_env(overrides)}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return ChildProcess("worker", [sys.executable, "-m", "worker"], env, log_path).start()


def _health(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}
    except (urllib.error.URLError, OSError, ValueError):
        return 0, {}


def wait_ready(worker: ChildProcess, port: int, timeout_s: float = 180.0) -> dict[str, Any]:
    """Poll ``/health`` until the worker says ready; returns its body.

    Raises:
        WorkerNotReady: The worker exited, or was not ready within ``timeout_s``.
    """
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if not worker.running:
            raise WorkerNotReady(
                f"the worker exited with code {worker.returncode} before it was ready; "
                f"last lines of {worker.log_path}:\n{worker.tail()}"
            )
        status, body = _health(url)
        if status == 200:
            return body
        time.sleep(0.5)
    raise WorkerNotReady(
        f"the worker was not ready within {timeout_s:.0f}s ({url} said {body or 'nothing'}); "
        f"last lines of {worker.log_path}:\n{worker.tail()}"
    )


def redis_reachable(settings: RedisSettings, timeout_s: float = 1.0) -> str | None:
    """None when the configured Redis answers PING (with the configured password), else the reason it did not."""
    import redis

    client = redis.Redis.from_url(
        settings.url, password=settings.password_value(), socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None
