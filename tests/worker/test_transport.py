"""The transport's changes to Faust's consumer: fetch wait, commits that never pass an unacked message, byte bound."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from faust.types import TP
from faust.types.tuples import Message as FaustMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.app import create_app
from worker.settings import WorkerSettings
from worker.transport import TriageConsumer


def test_fetch_wait_setting_reaches_the_kafka_consumer() -> None:
    async def build() -> int:
        app = create_app(WorkerSettings(brokers="127.0.0.1:1", fetch_wait_ms=33))
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == 33


@dataclass(eq=False)
class Message:
    """What the commit logic reads of a message the stream took and has not acked."""

    tp: object
    offset: int
    acked: bool = False


def _consumer() -> TriageConsumer:
    async def build() -> TriageConsumer:
        app = create_app(WorkerSettings(brokers="127.0.0.1:1", model_backend="noop"))
        consumer = app.consumer
        assert isinstance(consumer, TriageConsumer)
        return consumer

    return asyncio.run(build())


@pytest.mark.parametrize(
    ("committed", "in_flight", "acked", "then"),
    [
        (2585, 2585, [2586, 2587, 2588, 2589], 2590),  # upstream issue #606: one unacked offset at the head
        (None, 3, [4, 5, 6], 7),  # nothing committed yet: Faust skips its head check altogether
        (None, 0, [1, 2], 3),  # committed offset 0 reads as "nothing committed" too
    ],
)
def test_a_commit_never_passes_a_message_still_in_flight(
    committed: int | None, in_flight: int, acked: list[int], then: int
) -> None:
    consumer = _consumer()
    tp = consumer._new_topicpartition("tickets.incoming", 0)
    consumer._committed_offset[tp] = committed
    consumer._acked[tp] = list(acked)
    consumer._acked_index[tp] = set(acked)
    slow = Message(tp, in_flight)
    consumer._unacked_messages.add(slow)  # type: ignore[arg-type]
    assert consumer._new_offset(tp) is None, "the slow message would be lost by a crash after this commit"
    slow.acked = True
    consumer._unacked_messages.discard(slow)  # type: ignore[arg-type]
    consumer._acked[tp].append(in_flight)
    assert consumer._new_offset(tp) == then


def _record(offset: int) -> SimpleNamespace:
    """A record as the broker returns it, on partition 0 of the incoming topic."""
    return SimpleNamespace(topic="tickets.incoming", partition=0, offset=offset, timestamp=0, timestamp_type=0,
                           headers=[], key=None, value=b"{}", checksum=None, serialized_key_size=0,
                           serialized_value_size=2)


def _fetched(consumer: TriageConsumer, tp: object, offset: int) -> FaustMessage:
    """What the consumer makes of a record the broker returned (``_to_message``, as ``getmany`` calls it)."""
    return consumer._to_message(tp, _record(offset))  # type: ignore[arg-type]


@pytest.mark.parametrize("committed", [None, 0, 2585])
def test_a_commit_never_passes_a_fetched_message_that_faust_dropped_unacked(committed: int | None) -> None:
    """A fetched message Faust never delivers (its stream skips one of an older generation) must hold the next
    commit below it until it is read again (Faust's own head check lets one through, and none when nothing is
    committed yet)."""
    consumer = _consumer()
    consumer.app.topics.acking_topics.add("tickets.incoming")
    tp = consumer._new_topicpartition("tickets.incoming", 0)
    consumer._committed_offset[tp] = committed
    first = committed or 0
    dropped = _fetched(consumer, tp, first)  # never tracked, never acked
    for offset in range(first + 1, first + 4):
        message = _fetched(consumer, tp, offset)
        consumer.track_message(message)
        assert consumer.ack(message)
    assert consumer._new_offset(tp) is None, "the dropped message would be lost by this commit"
    again = _fetched(consumer, tp, dropped.offset)  # a rebalance reads it again
    consumer.track_message(again)
    assert consumer.ack(again)
    assert consumer._new_offset(tp) == first + 4
    consumer._committed_offset[tp] = first + 4
    _fetched(consumer, tp, first + 2)  # a duplicate of a committed record, dropped: it holds nothing back
    later = _fetched(consumer, tp, first + 4)
    consumer.track_message(later)
    assert consumer.ack(later)
    assert consumer._new_offset(tp) == first + 5


def test_a_record_read_again_after_a_seek_is_never_dropped_for_an_older_read_offset() -> None:
    """Faust drops a fetched record below its read offset; one left by a record delivered across a rebalance
    would drop every record read again from the committed offset, until the next rebalance."""

    consumer = _consumer()

    async def run() -> list[tuple[int, int | None]]:
        tp = consumer._new_topicpartition("tickets.incoming", 0)
        consumer._read_offset[tp] = 10
        records = [_record(offset) for offset in (5, 6, 7)]

        async def fetched(timeout: float) -> tuple[dict[object, list[SimpleNamespace]], set[object]]:
            return {tp: records}, {tp}

        consumer._wait_next_records = fetched  # type: ignore[method-assign]
        consumer.highwater = lambda tp: 8  # type: ignore[method-assign]
        seen = []
        async for got, message in consumer.getmany(0.1):
            seen.append((message.offset, consumer._read_offset[got]))  # what Faust's drain loop compares
        return seen

    seen = asyncio.run(run())
    assert [offset for offset, _ in seen] == [5, 6, 7]
    assert all(read is None or offset >= read for offset, read in seen), seen


def test_settled_only_once_faust_sought_after_the_latest_rebalance() -> None:
    consumer = _consumer()

    async def run() -> list[bool]:
        states = [consumer.settled]

        async def sought() -> dict[TP, int]:
            states.append(consumer.settled)
            consumer.app.on_rebalance_start()  # another rebalance starts during this seek
            return {}

        consumer.seek_to_committed = sought  # type: ignore[method-assign]
        consumer.app.on_rebalance_start()
        states.append(consumer.settled)
        await consumer.perform_seek()
        states.append(consumer.settled)

        async def quiet() -> dict[TP, int]:
            return {}

        consumer.seek_to_committed = quiet  # type: ignore[method-assign]
        await consumer.perform_seek()
        states.append(consumer.settled)
        return states

    assert asyncio.run(run()) == [True, False, False, False, True]


PER_PARTITION = 4


@settings(max_examples=60, deadline=None)
@given(committed=st.sampled_from([None, 0, 2585]), order=st.permutations(range(2 * PER_PARTITION)))
def test_acked_in_any_order_the_committed_offset_never_steps_over_an_unacked_one(
    committed: int | None, order: list[int]
) -> None:
    """Faust's own bookkeeping (``track_message``, ``ack``) and commit filter, two partitions, a commit after
    every ack: a partition's committed offset stays at or below its lowest message in flight, and reaches the
    end once every message is acked."""
    consumer = _consumer()
    consumer.app.topics.acking_topics.add("tickets.incoming")  # as subscribing the triage agent's stream does
    first = committed or 0
    tps = [consumer._new_topicpartition("tickets.incoming", partition) for partition in (0, 1)]
    messages = []
    for tp in tps:
        consumer._committed_offset[tp] = committed
        for offset in range(first, first + PER_PARTITION):
            message = FaustMessage(tp.topic, tp.partition, offset, 0.0, 0, None, None, b"{}", None, tp=tp)
            consumer.track_message(message)
            messages.append(message)
    for index in order:
        assert consumer.ack(messages[index])
        consumer._committed_offset.update(consumer._filter_committable_offsets(tps))  # what a commit records
        for tp in tps:
            in_flight = [m.offset for m in messages if m.tp == tp and not m.acked]
            now = consumer._committed_offset[tp]
            assert not in_flight or now is None or now <= min(in_flight), (tp, now, in_flight)
    assert [consumer._committed_offset[tp] for tp in tps] == [first + PER_PARTITION] * 2


def test_the_consumer_stops_fetching_while_the_bytes_it_holds_are_over_the_limit() -> None:
    async def run() -> tuple[object, bool]:
        app = create_app(WorkerSettings(brokers="127.0.0.1:1", model_backend="noop", max_inflight_bytes=1 << 20))
        consumer = app.consumer
        app.inflight.add(2 << 20)  # type: ignore[attr-defined]
        assert isinstance(consumer, TriageConsumer)
        full = await consumer._wait_next_records(0.05)
        app.inflight.release(2 << 20)  # type: ignore[attr-defined]
        return full, await app.inflight.room(0.05)  # type: ignore[attr-defined]

    full, room = asyncio.run(run())
    assert full == (None, None) and room
