"""The agent's ordering, without Kafka: acks strictly in take order, a failed batch, refused records, rebalances."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from inference.noop import NoopPredictor
from schemas.enums import ErrorCode
from schemas.messages import DeadLetter
from schemas.topics import TopicSettings
from tests.worker.kit import InProcess
from worker.agents import BatchRunner
from worker.cache import TriageCache
from worker.metrics import WorkerMetrics
from worker.model import ModelClient
from worker.pipeline import Outcome, TriagePipeline
from worker.publisher import BatchPublisher, Sent
from worker.records import InRecord, OutRecord
from worker.settings import RedisSettings, WorkerSettings
from worker.transport import InflightBytes

SETTINGS = WorkerSettings(
    model_backend="noop", topics=TopicSettings(), redis=RedisSettings(enabled=False), session_timeout_s=6
)


@dataclass
class FakeApp:
    """What the runner needs of the Faust app: a consumer to commit and a way to crash."""

    crashed: list[BaseException] = field(default_factory=list)
    commits: int = 0
    consumer_generation_id: int = 1

    def __post_init__(self) -> None:
        self.consumer = SimpleNamespace(commit=self._commit, settled=True)

    async def _commit(self) -> None:
        self.commits += 1

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


class FakeStream:
    def __init__(self) -> None:
        self.acked: list[int] = []

    async def ack(self, event: Any) -> None:
        self.acked.append(event.message.offset)


class Broker:
    """A producer whose acknowledgements the test releases one record batch at a time, in any order.

    With ``refuse_over``, it answers at once, refusing batches with a record over that size except on the
    dead-letter topic (a topic-level ``max.message.bytes``).
    """

    def __init__(self, refuse_over: int | None = None) -> None:
        self.pending: list[tuple[asyncio.Future[object], list[OutRecord]]] = []
        self.published: list[OutRecord] = []
        self.refuse_over = refuse_over

    async def send(self, records: Sequence[OutRecord]) -> list[Sent]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.pending.append((future, list(records)))
        if self.refuse_over is not None:
            self.release(len(self.pending) - 1)
        return [Sent(future, list(records))]

    def fail(self, index: int, exc: Exception) -> None:
        """The broker never acknowledges this record batch (the producer gave up on it)."""
        self.pending[index][0].set_exception(exc)

    def release(self, index: int) -> None:
        future, records = self.pending[index]
        if self.refuse_over is not None and any(
            len(r.value) > self.refuse_over and r.topic != SETTINGS.topics.deadletter for r in records
        ):
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.published.extend(records)
            future.set_result(None)


def event(offset: int, ticket_id: str, text: str = "my card is lost") -> Any:
    value = json.dumps({"ticket_id": ticket_id, "text": text}).encode()
    message = SimpleNamespace(
        topic="tickets.incoming", partition=0, offset=offset, key=b"k", value=value, timestamp=None, generation_id=1
    )
    return SimpleNamespace(message=message)


def runner(app: FakeApp, broker: Broker, gate: Any = None) -> tuple[BatchRunner, FakeStream, TriagePipeline]:
    metrics = WorkerMetrics()
    model = cast(ModelClient, InProcess(NoopPredictor()))
    pipeline = gate or TriagePipeline(SETTINGS, TriageCache(SETTINGS.redis, metrics), model, metrics)
    run = BatchRunner(cast(faust.App, app), SETTINGS, pipeline, InflightBytes(1 << 30), metrics)
    run.publisher = cast(BatchPublisher, broker)
    stream = FakeStream()
    run._stream = cast(Any, stream)
    return run, stream, pipeline


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def take_three(run: BatchRunner) -> None:
    """Three batches of two tickets: offsets 0-1, 2-3 and 4-5."""
    for first in (0, 2, 4):
        await run.take([event(first, f"t{first}"), event(first + 1, f"t{first + 1}")])


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=str)
def test_a_batch_is_acked_only_after_every_batch_taken_before_it(order: tuple[int, ...]) -> None:
    """Whatever order the broker confirms in. Acking a later batch first would let the commit pass the earlier
    one's tickets; holding a batch whose predecessors are all acked would only delay it."""

    async def scenario() -> list[list[int]]:
        app, broker = FakeApp(), Broker()
        run, stream, _ = runner(app, broker)
        tasks = [asyncio.create_task(run._publish_in_order()), asyncio.create_task(run._ack_in_order())]
        await take_three(run)
        await settle()
        assert len(broker.pending) == 3, "all three batches are sent without waiting for each other"
        seen = []
        for index in order:
            broker.release(index)
            await settle()
            seen.append(list(stream.acked))
        for task in tasks:
            task.cancel()
        assert not app.crashed
        return seen

    expected: list[list[int]] = []
    confirmed: set[int] = set()
    for index in order:
        confirmed.add(index)
        done = next(batch for batch in range(4) if batch not in confirmed)  # batches before it are all confirmed
        expected.append(list(range(2 * done)))
    assert asyncio.run(scenario()) == expected


def test_a_batch_the_broker_never_confirms_is_not_acked_and_neither_is_any_batch_after_it() -> None:
    """The producer is broken: the worker crashes rather than commit past it (the next owner reads it again)."""

    async def scenario() -> tuple[list[int], list[BaseException]]:
        app, broker = FakeApp(), Broker()
        run, stream, _ = runner(app, broker)
        tasks = [asyncio.create_task(run._publish_in_order()), asyncio.create_task(run._ack_in_order())]
        await take_three(run)
        await settle()
        broker.release(2)
        broker.release(0)
        broker.fail(1, KafkaTimeoutError())
        await settle()
        for task in tasks:
            task.cancel()
        return stream.acked, app.crashed

    acked, crashed = asyncio.run(scenario())
    assert acked == [0, 1], "only the batch before the failed one"
    assert [type(exc) for exc in crashed] == [KafkaTimeoutError]


def test_a_record_the_broker_refuses_becomes_a_dead_letter_and_the_batch_goes_on() -> None:
    """MESSAGE_TOO_LARGE is not retriable: crashing would replay the same batch on every worker forever."""

    async def scenario() -> tuple[Broker, FakeStream, FakeApp]:
        app, broker = FakeApp(), Broker(refuse_over=2_000)
        run, stream, _ = runner(app, broker)
        tasks = [asyncio.create_task(run._publish_in_order()), asyncio.create_task(run._ack_in_order())]
        await run.take([event(0, "small"), event(1, "huge", "x" * 3_000), event(2, "other")])
        await settle()
        for task in tasks:
            task.cancel()
        return broker, stream, app

    broker, stream, app = asyncio.run(scenario())
    assert not app.crashed and stream.acked == [0, 1, 2]
    enriched = [r.key for r in broker.published if r.topic == SETTINGS.topics.enriched]
    assert enriched == [b"small", b"other"]
    letters = [r.value for r in broker.published if r.topic == SETTINGS.topics.deadletter]
    (letter,) = [DeadLetter.model_validate_json(value) for value in letters]
    assert letter.error.code is ErrorCode.OUTPUT_TOO_LARGE and letter.ticket_id == "huge"
    assert not letter.payload_truncated and letter.source_offset == 1


class Stalled:
    """A pipeline whose batches finish only when the test says so."""

    def __init__(self, inner: TriagePipeline) -> None:
        self.inner = inner
        self.go = asyncio.Event()

    async def process(self, records: Sequence[InRecord]) -> list[Outcome]:
        await self.go.wait()
        return await self.inner.process(records)


def test_a_rebalance_finishes_the_batches_in_flight_before_the_partitions_move() -> None:
    async def scenario() -> tuple[list[int], int, int]:
        app, broker = FakeApp(), Broker()
        run, stream, pipeline = runner(app, broker)
        stalled = Stalled(pipeline)
        run.pipeline = cast(TriagePipeline, stalled)
        tasks = [asyncio.create_task(run._publish_in_order()), asyncio.create_task(run._ack_in_order())]
        await run.take([event(0, "a"), event(1, "b")])
        revoke = asyncio.create_task(run.before_revoke())
        await settle()
        assert not revoke.done(), "the revocation waits for the batch in flight"
        stalled.go.set()
        await settle()
        broker.release(0)
        await asyncio.wait_for(revoke, 5)
        for task in tasks:
            task.cancel()
        return stream.acked, app.commits, len(broker.published)

    acked, commits, published = asyncio.run(scenario())
    assert acked == [0, 1] and commits == 1 and published > 0


def test_a_batch_that_cannot_finish_in_time_is_never_published_after_the_rebalance() -> None:
    """The next owner starts from the committed offset: a late publication by the old owner would reorder."""

    async def scenario() -> tuple[list[int], int]:
        app, broker = FakeApp(), Broker()
        run, stream, pipeline = runner(app, broker)
        run.settings = SETTINGS.model_copy(update={"session_timeout_s": 0.1})
        stalled = Stalled(pipeline)
        run.pipeline = cast(TriagePipeline, stalled)
        tasks = [asyncio.create_task(run._publish_in_order()), asyncio.create_task(run._ack_in_order())]
        await run.take([event(0, "a")])
        await run.before_revoke()
        stalled.go.set()
        await settle()
        for task in tasks:
            task.cancel()
        return stream.acked, len(broker.pending)

    acked, sent = asyncio.run(scenario())
    assert acked == [] and sent == 0


def test_a_batch_taken_between_a_revocation_and_the_seek_after_it_is_dropped_unpublished() -> None:
    """Until the new assignment, a message fetched before the rebalance still carries the current generation: the
    old owner must not publish it while the partition may already be another worker's."""

    async def scenario() -> tuple[list[int], int, list[int]]:
        app, broker = FakeApp(), Broker(refuse_over=1 << 30)
        run, stream, _ = runner(app, broker)
        tasks = [asyncio.create_task(run._publish_in_order()), asyncio.create_task(run._ack_in_order())]
        await run.before_revoke()
        app.consumer.settled = False  # the rebalance has started; Faust has not sought yet
        await run.take([event(0, "a")])
        await settle()
        during = (list(stream.acked), len(broker.published))
        app.consumer.settled = True  # sought to the committed offsets: what it reads now is current
        await run.take([event(0, "a")])
        await settle()
        for task in tasks:
            task.cancel()
        return during[0], during[1], stream.acked

    acked_during, published_during, acked_after = asyncio.run(scenario())
    assert acked_during == [] and published_during == 0
    assert acked_after == [0]
