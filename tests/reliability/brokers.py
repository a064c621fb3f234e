"""Dedicated brokers for the broker-fault scenarios: one behind a cuttable proxy, one that restarts.

Tansu is memory-only: a restart loses every topic, record and committed offset. So the partition
scenario puts a ``FaultProxy`` in front of a broker that keeps running (every client connection,
bootstrap and advertised, goes through the proxy), and the restart scenario only claims what a
memory-only broker can show: clients reconnect on their own and new tickets are triaged. The produce
scenarios put a ``KafkaProxy`` there instead, which holds or answers chosen requests in the broker's place.
"""

from __future__ import annotations

from pathlib import Path

from loadtest.broker import EmbeddedBroker, free_port
from tests.reliability.proxy import FaultProxy, KafkaProxy, OnRequest

__all__ = ["PartitionedBroker"]


class PartitionedBroker:
    """A Tansu broker that advertises a proxy's port, so ``cut()`` severs every client from it.

    With ``on_request``, the proxy is a ``KafkaProxy`` that shows that hook every request first.
    """

    def __init__(self, log_path: Path, on_request: OnRequest | None = None) -> None:
        listen_port = free_port()
        self.proxy = (
            FaultProxy("127.0.0.1", listen_port)
            if on_request is None
            else KafkaProxy("127.0.0.1", listen_port, on_request)
        )
        self._broker = EmbeddedBroker(listen_port, log_path, advertised=self.proxy.address)

    @property
    def bootstrap(self) -> str:
        return self.proxy.address

    def start(self) -> PartitionedBroker:
        self.proxy.start()
        try:
            self._broker.start()
        except BaseException:
            self.proxy.stop()
            raise
        return self

    def cut(self) -> None:
        self.proxy.cut()

    def restore(self) -> None:
        self.proxy.restore()

    def stop(self) -> None:
        self._broker.stop()
        self.proxy.stop()

    def __enter__(self) -> PartitionedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
