"""The worker as a real operating-system process: started, probed, signalled and killed like in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import psutil

from triage.broker import free_port

__all__ = ["WorkerProcess"]

_REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``python -m worker`` with its own ``TRIAGE_*`` environment; stdout and stderr go to files."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.web_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")},
            "TRIAGE_WEB_HOST": "127.0.0.1",
            "TRIAGE_WEB_PORT": str(self.web_port),
            "TRIAGE_STATE_DIR": str(log_dir / f"{name}-state"),
            "TRIAGE_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            # Tansu answers a JoinGroup after half the session timeout, and a killed member's partitions
            # move only once it expires: the smallest allowed value keeps starts and failovers short.
            "TRIAGE_SESSION_TIMEOUT_S": "6",
            **env,
        }
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        """Start (or restart) the process, appending to the same log files."""
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                cwd=_REPO,
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "worker not started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        """HTTP GET on the worker's web server: (status, body); status 0 when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, urllib.error.URLError):
            return 0, b""

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Block until ``/health`` says ready; fail with the log tail when the process dies or stalls."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.alive:
                raise AssertionError(
                    f"worker {self.name} exited with {self.returncode} before ready:\n{self.tail()}"
                )
            if self.get("/health", timeout=1.0)[0] == 200:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} not ready after {timeout:.0f}s:\n{self.tail()}")

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, f"/metrics of {self.name} answered {status}"
        return body.decode()

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr, across restarts."""
        return "".join(
            p.read_text(encoding="utf-8", errors="replace")
            for p in (self.stdout_path, self.stderr_path)
            if p.exists()
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self) -> None:
        """Clean up whatever state the test left the process in (SIGTERM, then SIGKILL)."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
