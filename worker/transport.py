"""Faust's aiokafka transport with three changes the worker's delivery promise needs.

1. A configurable fetch wait: Faust hard-codes ``fetch_max_wait_ms=1500`` for the worker's consumer, so on a
   quiet partition a lone ticket can sit in a held fetch for up to 1.5 s before the micro-batch even sees it.
2. Commits never step over a fetched message that was not acked: Faust's ``Consumer._new_offset`` lets one
   unacked offset through at a partition's head (all when nothing is committed), so a slow message, or one
   Faust dropped undelivered around a rebalance, could be committed past and lost. Offsets never fetched
   (transaction markers, compacted records) are still stepped over.
3. Fetched bytes are bounded: the consumer stops fetching while the messages it fetched and the worker has not
   yet acked (or dropped) hold more than ``TRIAGE_MAX_INFLIGHT_BYTES``; Faust's own bound counts messages.
4. No fetched record is dropped for lying below Faust's read offset. The broker returns a partition's records in
   order and only goes back after a seek, whose records must all be delivered; a read offset left over from a
   record delivered across a rebalance made Faust drop the records read again from the committed offset, and
   they waited, uncommitted, for the next rebalance.
5. ``settled``: False from the start of a rebalance until Faust has sought to the committed offsets, so the
   worker takes no message fetched before the partitions moved.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, TransportT

from worker.settings import WorkerSettings

__all__ = ["InflightBytes", "TriageApp", "TriageConsumer"]


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
    """Faust's consumer with the changes above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unfinished: defaultdict[TP, set[int]] = defaultdict(set)  # fetched offsets not acked yet
        self._sought_at = 0  # the app's rebalancing_count when Faust last sought to the committed offsets

    @property
    def settled(self) -> bool:
        """No rebalance started since the last seek to the committed offsets."""
        return self._sought_at == self.app.rebalancing_count

    async def perform_seek(self) -> None:
        started = self.app.rebalancing_count
        await super().perform_seek()
        self._sought_at = started

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        """Faust's, with the read offset lowered to each record that would otherwise be dropped (change 4)."""
        read_offset = self._read_offset
        async for tp, message in super().getmany(timeout):
            current = read_offset[tp]
            if current is not None and message.offset < current:
                read_offset[tp] = message.offset
            yield tp, message

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
        skipped undelivered (its stream skips an older generation's), which hold the partition's commits until
        the seek after the rebalance reads them again. Acked offsets
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
