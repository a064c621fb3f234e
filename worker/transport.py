"""Faust's aiokafka transport with a configurable fetch wait.

Faust hard-codes ``fetch_max_wait_ms=1500`` for the worker's consumer, so on a quiet partition a lone
ticket can sit in a held fetch for up to 1.5 s before the micro-batch even sees it: a latency floor far
above ``TRIAGE_BATCH_WAIT_MS``. These subclasses only override that one value.
"""

from __future__ import annotations

from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TransportT

__all__ = ["TriageApp"]


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = cast("TriageApp", self.app).fetch_wait_ms  # read by the fetcher start() makes
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(driver.Transport):
    Consumer = _Consumer


class TriageApp(faust.App):
    """A Faust app whose consumer waits at most ``fetch_wait_ms`` for data on an empty fetch."""

    fetch_wait_ms: int = 1500

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self, loop=self.loop)
