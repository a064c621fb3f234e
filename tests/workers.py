"""The worker as a real operating-system process in tests: started, probed, signalled and killed like in production.

Built on the demo's and the benchmarks' ``ChildProcess``: each worker runs in its own process group and is
stopped as a group, so a worker's model process never outlives a test either.
"""

from __future__ import annotations

import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.broker import free_port
from loadtest.processes import ChildProcess
from loadtest.stack import WorkerNotReady, wait_ready

__all__ = ["WorkerProcess", "consumer_lag", "metric_labels", "metric_sum"]

_REPO = Path(__file__).resolve().parents[1]


def metric_sum(text: str, sample: str, **labels: str) -> float:
    """Sum of every sample named ``sample`` whose labels include ``labels`` (0.0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def consumer_lag(text: str) -> dict[tuple[str, int], float]:
    """End minus committed offset per (topic, partition) from Faust's sensors, as the lag alerts compute it.

    A partition with no commit yet counts from offset 0.
    """

    def by_partition(sample: str) -> dict[tuple[str, int], float]:
        return {(s.labels["topic"], int(s.labels["partition"])): s.value
                for family in text_string_to_metric_families(text) for s in family.samples if s.name == sample}

    committed = by_partition("faust_topic_partition_offset_commited")
    return {tp: end - committed.get(tp, 0.0) for tp, end in by_partition("faust_topic_partition_end_offset").items()}


def metric_labels(text: str, sample: str | None = None) -> list[dict[str, str]]:
    """The label sets of every sample (or of those named ``sample``), to check what the worker exposes."""
    return [
        dict(s.labels)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if sample is None or s.name == sample
    ]


class WorkerProcess(ChildProcess):
    """``python -m worker`` (or ``argv``) with ``settings`` as its ``TRIAGE_*`` environment; one log file.

    The test process's own ``TRIAGE_*`` variables are left out so only what the test sets applies. Defaults
    suit the embedded broker: Tansu answers a JoinGroup after half the session timeout, and a killed member's
    partitions move only once it expires, so the smallest allowed value keeps starts and failovers short.
    """

    def __init__(
        self, name: str, settings: Mapping[str, str], log_path: Path, argv: Sequence[str] | None = None
    ) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")},
            "TRIAGE_WEB_HOST": "127.0.0.1",
            "TRIAGE_WEB_PORT": str(free_port()),
            "TRIAGE_STATE_DIR": str(log_path.with_name(f"{log_path.stem}-state")),
            "TRIAGE_SESSION_TIMEOUT_S": "6",
            "TRIAGE_TORCH_THREADS": "1",
            "TRIAGE_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
        super().__init__(name, argv or [sys.executable, "-m", "worker"], env, log_path, cwd=_REPO)
        self.port = int(env["TRIAGE_WEB_PORT"])
        self.starts = 0

    def start(self) -> WorkerProcess:
        """Start (or restart) the process, appending to the same log file."""
        super().start()
        self.starts += 1
        return self

    def get(self, path: str, timeout: float = 3.0) -> tuple[int, str]:
        """HTTP GET on the worker's web server: (status, body); status 0 when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = 120.0) -> dict[str, Any]:
        """Until ``/health`` says ready (model loaded, Kafka reachable); its body. Fails with the log tail."""
        try:
            return wait_ready(self, self.port, timeout)
        except WorkerNotReady as exc:
            pytest.fail(f"worker {self.name}: {exc}")

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, f"/metrics of {self.name} answered {status}"
        return body

    def metric(self, sample: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels`` (0 when absent)."""
        return metric_sum(self.metrics(), sample, **labels)

    def rss_bytes(self) -> int:
        """Resident memory of the worker and its model processes; shared pages counted once (PSS)."""
        assert self.pid is not None, "worker not started"
        worker = psutil.Process(self.pid)
        total = 0
        for process in [worker, *worker.children(recursive=True)]:
            try:
                total += int(process.memory_full_info().pss)
            except psutil.NoSuchProcess:
                continue
        return total

    def model_pid(self) -> int:
        """The model process, found from outside: the newest child of the worker's multiprocessing forkserver.

        Not read from ``/health``, so the fault tests drive any version of the worker, one that predates the field too.
        """
        assert self.pid is not None, "worker not started"
        servers = [p for p in psutil.Process(self.pid).children() if "forkserver" in " ".join(p.cmdline())]
        models = [child for server in servers for child in server.children()]
        assert models, f"worker {self.name} has no model process"
        return max(models, key=lambda p: p.create_time()).pid

    def signal(self, sig: signal.Signals) -> None:
        """Deliver ``sig`` to the worker alone, as an operator's ``kill`` would."""
        assert self.pid is not None, "worker not started"
        os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or committed."""
        self.signal(signal.SIGKILL)
        self.wait(10)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def output(self) -> str:
        """Everything the process wrote, across restarts."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
