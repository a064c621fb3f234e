"""Faust's aiokafka transport with three changes the worker's delivery promise needs.

1. A configurable fetch wait: Faust hard-codes ``fetch_max_wait_ms=1500`` for the worker's consumer, so on a
   quiet partition a lone ticket can sit in a held fetch for up to 1.5 s before the micro-batch even sees it.
2. Commits never step over a fetched message that was not acked: Faust's ``Consumer._new_offset`` lets one
   unacked offset through at a partition's head (all when nothing is committed), so a slow message, or one
   Faust dropped undelivered around a rebalance, could be committed past and lost. Offsets never fetched
   (transaction markers, compacted records) are still stepped over.
3. Fetched bytes are bounded: the consumer stops fetching while the messages it fetched and the worker has not
   yet acked (or dropped) hold more than ``TRIAGE_MAX_INFLIGHT_BYTES``; Faust's own bound counts messages.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, TransportT

from worker.settings import WorkerSettings

__all__ = ["InflightBytes", "TriageApp"]


class InflightBytes:
    """Bytes of fetched messages not yet acked or dropped by the worker; the consumer fetches while under ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._room = asyncio.Event()
        self._room.set()

    def add(self, size: int) -> None:
        self.held += size
        if self.held >= self.limit:
            self._room.clear()

    def release(self, size: int) -> None:
        self.reset(self.held - size)

    def reset(self, held: int) -> None:
        """Set what is held, e.g. after a rebalance dropped the buffered messages without an ack."""
        self.held = max(0, held)
        if self.held < self.limit:
            self._room.set()

    async def room(self, timeout: float) -> bool:
        """Wait until there is room (True), at most ``timeout`` seconds (False)."""
        try:
            await asyncio.wait_for(self._room.wait(), timeout)
        except TimeoutError:
            return False
        return True


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = cast("TriageApp", self.app).triage_settings.fetch_wait_ms  # read by its fetcher
        return consumer


class TriageConsumer(driver.Consumer):
    """Faust's consumer with the fetch wait, the in-flight byte bound and the commit fix above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unfinished: defaultdict[TP, set[int]] = defaultdict(set)  # fetched offsets not acked yet

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _to_message(self, tp: TP, record: Any) -> Any:
        cast("TriageApp", self.app).inflight.add(len(record.value or b""))
        self._unfinished[tp].add(record.offset)
        return super()._to_message(tp, record)

    def ack(self, message: Any) -> bool:
        self._unfinished[message.tp].discard(message.offset)
        return super().ack(message)

    async def _wait_next_records(self, timeout: float) -> Any:
        if not await cast("TriageApp", self.app).inflight.room(timeout):
            return None, None  # full: fetch nothing this round (getmany yields nothing for None)
        return await super()._wait_next_records(timeout)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Let the app finish and commit its in-flight work first: Faust drops the partitions' acks right away."""
        hook = cast("TriageApp", self.app).before_revoke
        if hook is not None:
            await hook()
        await super().on_partitions_revoked(revoked)
        for tp in revoked:
            self._unfinished.pop(tp, None)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's new offset, capped below the lowest message of ``tp`` fetched and not acked.

        faust-streaming issue #606's fix (upstream PR #707, not in the pinned release), extended to messages Faust
        dropped undelivered, which hold the partition's commits until a rebalance reads them again. Acked offsets
        past the floor stay for a later commit; Faust's own code still fills a compacted topic's gaps.
        """
        committed = self._committed_offset[tp]
        acked_index = self._acked_index[tp]
        unfinished = self._unfinished[tp]
        if committed is not None:
            unfinished.difference_update([offset for offset in unfinished if offset < committed])
        pending = [m.offset for m in list(self._unacked_messages) if m.tp == tp and not m.acked]
        pending += [offset for offset in unfinished if offset not in acked_index]
        if not pending:
            return super()._new_offset(tp)
        floor = min(pending)
        acked = self._acked[tp]
        held = [offset for offset in acked if offset >= floor]
        acked[:] = [offset for offset in acked if offset < floor]
        try:
            return super()._new_offset(tp)
        finally:
            acked.extend(held)


class _Transport(driver.Transport):
    Consumer = TriageConsumer


class TriageApp(faust.App):
    """A Faust app whose consumer uses ``fetch_wait_ms``, bounds ``inflight`` bytes and commits in order.

    ``create_app`` sets the attributes below before the app starts.
    """

    triage_settings: WorkerSettings
    inflight: InflightBytes
    drain: Callable[[], Awaitable[None]]  # finishes the batches in flight, before a clean stop commits
    before_revoke: Callable[[], Awaitable[None]] | None = None

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self, loop=self.loop)
