"""The broker's answers to the worker's Produce requests, faulted by a Kafka-aware proxy (``KafkaProxy``).

Holes 1 and 2 of issue 15 at the broker level: the unit tests in ``tests/worker`` check the ack order and the
refusal path against a fake producer; here a real worker talks to a real broker, and the proxy holds its
Produce requests back or answers them ``MESSAGE_TOO_LARGE`` as Apache Kafka would (Tansu enforces no size
limit). These scenarios test plumbing, not the model, so the worker runs the no-op backend.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loadtest.replay import ReplayConfig
from loadtest.source import SourceRecord
from schemas import DeadLetter
from schemas.enums import ErrorCode
from tests.reliability.brokers import PartitionedBroker
from tests.reliability.proxy import (
    KafkaRequest,
    ProduceHold,
    RefuseInvalidRecord,
    RefuseLargeProduce,
    StatedTopicLimits,
)
from tests.reliability.summary import report, report_line
from tests.reliability.traffic import Stage, Tap, Traffic
from tests.workers import WorkerProcess

HOLD_S = 3.0
BROKER_LIMIT = 256 * 1024  # the refusing broker's max.message.bytes, well under the worker's max_output_bytes


class CommittedOffsets:
    """Reads a consumer group's committed offsets on one topic from the broker, without joining the group.

    (aiokafka's admin client cannot decode Tansu's OffsetFetch answer; a group-less consumer's ``committed`` can.)
    """

    def __init__(self, brokers: str, group: str, topic: str, partitions: int) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=brokers, group_id=group, enable_auto_commit=False)
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

    async def __aenter__(self) -> CommittedOffsets:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def read(self) -> dict[int, int]:
        """Partition → committed offset (the next one to read), for partitions with a commit."""
        offsets = {tp.partition: await self._consumer.committed(tp) for tp in self._partitions}
        return {partition: offset for partition, offset in offsets.items() if offset is not None}


def test_commits_never_pass_a_ticket_whose_outputs_the_broker_has_not_acknowledged(
    tmp_path: Path,
    stage: Stage,
    spawn: Callable[..., WorkerProcess],
    source_records: list[SourceRecord],
) -> None:
    """Every 4th Produce request of the worker is held 3 s before it reaches the broker.

    While one is held its records are not in the log, so none of its tickets is published. The consumer group's
    committed offsets on the incoming topic, read again and again while the hold lasts (and only counted when the
    same hold lasted through the read), must never pass the lowest input offset of those tickets; at the end
    nothing is lost.
    """
    hold = ProduceHold(stage.topics.outputs(), every=4, hold_s=HOLD_S)
    with PartitionedBroker(tmp_path / "tansu-held.log", on_request=hold) as broker:
        worker = spawn("held", broker.bootstrap, stage, None, batch_size="16")
        reads: list[tuple[frozenset[bytes], dict[int, int]]] = []

        async def watch(offsets: CommittedOffsets) -> None:
            while True:
                held = hold.held
                committed = await offsets.read()
                if held and hold.held is held:
                    reads.append((held, committed))
                await asyncio.sleep(0.05)

        async def scenario() -> tuple[Traffic, dict[bytes, tuple[int, int]]]:
            await stage.create_topics(broker.bootstrap)
            worker.start()
            await asyncio.to_thread(worker.wait_ready)
            inputs = Tap(broker.bootstrap, [stage.topics.incoming], stage.partitions)
            await inputs.start()
            try:
                async with CommittedOffsets(broker.bootstrap, stage.group, stage.topics.incoming, 4) as offsets:
                    watcher = asyncio.create_task(watch(offsets))
                    async with Traffic("produce_held", broker.bootstrap, stage, source_records) as t:
                        t.send(ReplayConfig(count=600, rate=150, duplicate_ratio=0.1, seed=21))
                        await t.settle(180)
                    watcher.cancel()
                while await inputs.poll():
                    pass
                return t, {r.key: (r.partition, r.offset) for r in inputs.records if r.key is not None}
            finally:
                await inputs.stop()

        traffic, offset_of = asyncio.run(scenario())
        alive = worker.running and worker.starts == 1
        worker.stop()  # while the broker is up: without it, the stop waits out the worker's grace period

    passed: list[str] = []
    at_the_head = 0
    for held, committed in reads:
        lowest: dict[int, int] = {}
        for key in held:
            partition, offset = offset_of[key]
            lowest[partition] = min(offset, lowest.get(partition, offset))
        for partition, offset in lowest.items():
            at = committed.get(partition, 0)
            if at > offset:
                passed.append(f"partition {partition} committed at {at} while offset {offset} was unpublished")
            at_the_head += at == offset
    outcome = traffic.outcome()
    outcome.extra.update(holds=hold.holds, commit_reads_while_held=len(reads), at_the_held_offset=at_the_head)
    report(outcome)
    assert alive, f"the worker did not ride out the held requests:\n{worker.tail()}"
    assert hold.holds >= 3 and reads, f"too few holds observed ({hold.holds} holds, {len(reads)} reads)"
    assert not passed, f"{len(passed)} commits passed unpublished tickets, first: {passed[:3]}"
    outcome.assert_clean()


def _ticket(ticket_id: str, text: str, **extra: object) -> bytes:
    fields = {"ticket_id": ticket_id, "text": text, "channel": "email", "created_at": "2026-12-01T09:30:00Z"}
    return json.dumps({**fields, **extra}).encode()


def _one_among_neighbours(
    stage: Stage, source_records: list[SourceRecord], odd: str, count: int, attachment_bytes: int = 0
) -> tuple[str, list[str], dict[str, bytes], list[str]]:
    """The odd ticket's id (with an incompressible attachment when asked), its ``count`` ordinary neighbours,
    every payload, and the order to send them in: the odd one in the middle."""
    odd = f"{odd}-{stage.base}"
    neighbours = [f"n{i:02d}-{stage.base}" for i in range(count)]
    payloads = {i: _ticket(i, r.text) for i, r in zip([*neighbours, odd], source_records, strict=False)}
    if attachment_bytes:
        attachment = base64.b64encode(os.urandom(attachment_bytes)).decode()
        payloads[odd] = _ticket(odd, source_records[count].text, attachment=attachment)
    return odd, neighbours, payloads, [*neighbours[: count // 2], odd, *neighbours[count // 2 :]]


@pytest.mark.parametrize("letter_bytes", [64 * 1024, 300_000], ids=["cut-letter-fits", "cut-letter-refused-too"])
def test_a_record_the_broker_refuses_costs_only_its_ticket_a_dead_letter(
    tmp_path: Path,
    stage: Stage,
    spawn: Callable[..., WorkerProcess],
    source_records: list[SourceRecord],
    letter_bytes: int,
) -> None:
    """The broker refuses record batches over 256 KiB (``MESSAGE_TOO_LARGE``, not retriable); one valid ticket
    carries a 600 KB attachment field (incompressible), its 40 neighbours are ordinary, all on one partition.

    That ticket gets an ``output_too_large`` dead letter (whole payload refused too, so cut like an invalid one's),
    every neighbour is triaged exactly once, the worker never restarts, and the partition's committed offset
    reaches its end: no crash loop. When dead letters are cut to more than the broker takes (``letter_bytes``),
    the dead letter keeps no payload, only its hash, size and source position.
    """
    refuse = RefuseLargeProduce(stage.topics.outputs(), BROKER_LIMIT)
    big, neighbours, payloads, order = _one_among_neighbours(stage, source_records, "big", 40, 450_000)
    with PartitionedBroker(tmp_path / "tansu-refusing.log", on_request=refuse) as broker:
        worker = spawn("refused", broker.bootstrap, stage, None, deadletter_payload_bytes=str(letter_bytes))
        records, committed = asyncio.run(_feed_partition_0(broker.bootstrap, stage, worker, payloads, order))
        alive = worker.running and worker.starts == 1
        counted = worker.metric("triage_dead_letters_total", reason=ErrorCode.OUTPUT_TOO_LARGE.value) if alive else -1
        worker.stop()
        log = worker.output()

    enriched = Counter(key.decode() for topic, key, _ in records if topic == stage.topics.enriched and key)
    letters = [DeadLetter.model_validate_json(value) for topic, _, value in records if topic == stage.topics.deadletter]
    resolved = set(enriched) | {letter.ticket_id for letter in letters}
    lost = sorted(set(order) - resolved)
    duplicates = sum(n - 1 for n in enriched.values()) + len(letters) - len({letter.ticket_id for letter in letters})
    report_line(
        f"scenario=produce_too_large sent={len(order)} enriched={len(enriched)} dead={len(letters)} lost={len(lost)} "
        f"duplicates={duplicates} refused_records={len(refuse.refused)} committed={committed.get(0)} "
        f"worker_starts={worker.starts}"
    )
    assert big.encode() in refuse.refused, "the proxy never refused the large ticket's records"
    assert alive and "publish_failed" not in log, f"the worker crashed on a refused record:\n{worker.tail()}"
    assert not lost, f"{len(lost)} tickets lost: {lost[:5]}"
    assert duplicates == 0 and big not in enriched, f"duplicates {duplicates}, enriched {enriched.get(big)}"
    assert set(enriched) == set(order) - {big}, "a neighbour of the refused ticket was not triaged"
    (letter,) = letters
    assert letter.ticket_id == big and letter.error.code == ErrorCode.OUTPUT_TOO_LARGE, letter.error
    assert letter.payload_sha256 == hashlib.sha256(payloads[big]).hexdigest()
    assert (letter.source_partition, letter.source_offset) == (0, order.index(big)), "where the whole one stays"
    assert len(letter.raw_payload()) == (letter_bytes if letter_bytes < BROKER_LIMIT else 0)
    assert committed.get(0) == len(order), f"partition 0 committed at {committed.get(0)}, not past every ticket"
    assert counted == 1, f"triage_dead_letters_total counted {counted} for one dead letter"


async def _feed_partition_0(
    brokers: str, stage: Stage, worker: WorkerProcess, payloads: dict[str, bytes], order: list[str]
) -> tuple[list[tuple[str, bytes | None, bytes]], dict[int, int]]:
    """Start the worker, send ``order`` to partition 0 and collect its outputs until the group committed them all
    and every ticket came out (or 2 minutes passed), then 1.5 s more for late duplicates."""
    await stage.create_topics(brokers)
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    producer = AIOKafkaProducer(bootstrap_servers=brokers, max_request_size=2 << 20, linger_ms=50)
    await producer.start()
    try:
        sends = [await producer.send(stage.topics.incoming, payloads[i], key=i.encode(), partition=0) for i in order]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    tap = Tap(brokers, stage.topics.outputs(), stage.partitions)
    await tap.start()
    try:
        async with CommittedOffsets(brokers, stage.group, stage.topics.incoming, 4) as offsets:
            committed: dict[int, int] = {}
            for _ in range(1200):
                await tap.poll()
                committed = await offsets.read()
                if committed.get(0) == len(order) and len({r.key for r in tap.records}) >= len(order):
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # late duplicates, if any
        await tap.poll()
        return [(r.topic, r.key, r.value) for r in tap.records], committed
    finally:
        await tap.stop()


ROUTE_LIMIT = 64 * 1024


def test_a_ticket_over_one_output_topics_limit_is_dead_lettered_and_published_nowhere(
    tmp_path: Path, stage: Stage, spawn: Callable[..., WorkerProcess], source_records: list[SourceRecord]
) -> None:
    """The broker states a 64 KiB ``max.message.bytes`` for the route topics and Kafka's default for the others; one
    valid ticket carries a 100 KB attachment (incompressible), its 30 neighbours are ordinary.

    That ticket fits ``enriched`` but not its route: it gets one ``output_too_large`` dead letter naming the limit
    and is on no other topic (never enriched *and* dead-lettered); every neighbour is triaged exactly once, and no
    record batch over a route's limit is ever sent to it.
    """
    routes = [t for t in stage.topics.outputs() if t.startswith(stage.topics.route_prefix)]
    limits = StatedTopicLimits(dict.fromkeys(routes, ROUTE_LIMIT))
    big, neighbours, payloads, order = _one_among_neighbours(stage, source_records, "big", 30, 75_000)
    with PartitionedBroker(tmp_path / "tansu-limits.log", on_request=limits) as broker:
        worker = spawn("limits", broker.bootstrap, stage, None)
        records, committed = asyncio.run(_feed_partition_0(broker.bootstrap, stage, worker, payloads, order))
        alive = worker.running and worker.starts == 1
        worker.stop()

    keys = Counter((topic, key.decode()) for topic, key, _ in records if key)
    enriched = {key: n for (topic, key), n in keys.items() if topic == stage.topics.enriched}
    largest = max(limits.largest.values(), default=0)
    letters = [DeadLetter.model_validate_json(value) for topic, _, value in records if topic == stage.topics.deadletter]
    report_line(
        f"scenario=topic_limits sent={len(order)} enriched={sum(enriched.values())} dead={len(letters)} "
        f"described={limits.described} largest_route_batch={largest}"
    )
    assert alive, f"the worker did not keep running:\n{worker.tail()}"
    assert limits.described >= 1, "the worker never asked the broker for its topics' limits"
    (letter,) = letters
    assert letter.ticket_id == big and letter.error.code == ErrorCode.OUTPUT_TOO_LARGE, letter.error
    assert str(ROUTE_LIMIT) in letter.error.message, letter.error.message
    assert [topic for topic, key in keys if key == big] == [stage.topics.deadletter], "published and dead-lettered"
    assert enriched == dict.fromkeys(neighbours, 1), "a neighbour was lost or published twice"
    assert 0 < largest <= ROUTE_LIMIT, limits.largest
    assert committed.get(0) == len(order), f"partition 0 committed at {committed.get(0)}, not past every ticket"


def test_a_record_the_broker_refuses_as_invalid_costs_only_its_ticket_a_dead_letter(
    tmp_path: Path, stage: Stage, spawn: Callable[..., WorkerProcess], source_records: list[SourceRecord]
) -> None:
    """The broker's record validation refuses one valid ticket's enriched record (``INVALID_RECORD``, code 87,
    which aiokafka does not know and raises as ``UnknownError``); its 30 neighbours on the same partition are
    ordinary.

    That ticket gets one ``output_refused`` dead letter naming the error, counted once; every neighbour is
    triaged exactly once, the worker never restarts, and the committed offset reaches the partition's end.
    """
    bad, neighbours, payloads, order = _one_among_neighbours(stage, source_records, "bad", 30)
    refuse = RefuseInvalidRecord([stage.topics.enriched], [bad.encode()])
    with PartitionedBroker(tmp_path / "tansu-invalid.log", on_request=refuse) as broker:
        worker = spawn("invalid", broker.bootstrap, stage, None)
        records, committed = asyncio.run(_feed_partition_0(broker.bootstrap, stage, worker, payloads, order))
        alive = worker.running and worker.starts == 1
        counted = worker.metric("triage_dead_letters_total", reason=ErrorCode.OUTPUT_REFUSED.value) if alive else -1
        worker.stop()
        log = worker.output()

    enriched = Counter(key.decode() for topic, key, _ in records if topic == stage.topics.enriched and key)
    letters = [DeadLetter.model_validate_json(value) for topic, _, value in records if topic == stage.topics.deadletter]
    report_line(
        f"scenario=produce_invalid_record sent={len(order)} enriched={len(enriched)} dead={len(letters)} "
        f"refused_records={len(refuse.refused)} committed={committed.get(0)} worker_starts={worker.starts}"
    )
    assert bad.encode() in refuse.refused, "the proxy never refused the ticket's record"
    assert alive and "publish_failed" not in log, f"the worker crashed on a refused record:\n{worker.tail()}"
    assert dict(enriched) == dict.fromkeys(neighbours, 1), "a neighbour was lost or published twice"
    (letter,) = letters
    assert letter.ticket_id == bad and letter.error.code == ErrorCode.OUTPUT_REFUSED, letter.error
    assert "UnknownError" in letter.error.message and letter.payload_sha256 == hashlib.sha256(payloads[bad]).hexdigest()
    assert committed.get(0) == len(order), f"partition 0 committed at {committed.get(0)}, not past every ticket"
    assert counted == 1, f"triage_dead_letters_total counted {counted} for one dead letter"


class ProduceStall:
    """``on_request`` hook: while ``stalled`` is set, every Produce request to ``topics`` waits (a broker that
    stopped answering produce, e.g. out of disk, while it still answers metadata)."""

    def __init__(self, topics: Collection[str]) -> None:
        self.topics = set(topics)
        self.stalled = threading.Event()
        self.held = 0

    async def __call__(self, request: KafkaRequest) -> bytes | None:
        produce = request.produce()
        if produce is None or not {topic for topic, _ in produce.topics} <= self.topics:
            return None
        if self.stalled.is_set():
            self.held += 1
        while self.stalled.is_set():
            await asyncio.sleep(0.05)
        return None


def test_a_stalled_producer_makes_the_worker_not_ready_and_says_why(
    tmp_path: Path, stage: Stage, spawn: Callable[..., WorkerProcess], source_records: list[SourceRecord]
) -> None:
    """Produce requests unanswered for 6 s: /health says ``producer_stalled`` within its 2 s bound (plus a poll),
    ``/metrics`` shows the oldest unacknowledged batch's age, and everything comes out once the broker answers."""
    stall = ProduceStall(stage.topics.outputs())
    with PartitionedBroker(tmp_path / "tansu-stalled.log", on_request=stall) as broker:
        worker = spawn("stalled", broker.bootstrap, stage, None, producer_stall_s="2")

        async def scenario() -> tuple[Traffic, float, dict[str, object], float]:
            await stage.create_topics(broker.bootstrap)
            worker.start()
            await asyncio.to_thread(worker.wait_ready)
            async with Traffic("producer_stalled", broker.bootstrap, stage, source_records) as t:
                t.send(ReplayConfig(count=50, rate=None, seed=41))
                await t.settle(60, quiet_s=0)
                stall.stalled.set()
                t.send(ReplayConfig(count=50, rate=None, seed=42))
                started = time.monotonic()
                while (health := worker.get("/health"))[0] != 503 and time.monotonic() - started < 30:
                    await asyncio.sleep(0.1)
                took = time.monotonic() - started
                age = worker.metric("triage_oldest_unconfirmed_produce_seconds")
                await asyncio.sleep(max(0.0, 6 - took))
                stall.stalled.clear()
                await t.settle(60)
            return t, took, json.loads(health[1] or "{}"), age

        traffic, took, body, age = asyncio.run(scenario())
        ready_after = worker.get("/health")[0]
        worker.stop()
    outcome = traffic.outcome()
    outcome.extra.update(not_ready_after_s=round(took, 2), held=stall.held, unconfirmed_age_s=round(age, 1))
    report(outcome)
    assert stall.held > 0, "no produce request was held"
    assert body.get("reason_code") == "producer_stalled", f"/health during the stall: {body}"
    assert took <= 2 + 3 and age >= 2, f"not ready after {took:.1f} s, oldest unacknowledged {age:.1f} s"
    assert ready_after == 200
    outcome.assert_clean()


def test_a_produce_unanswered_past_its_timeout_stops_the_worker_and_loses_nothing(
    tmp_path: Path, stage: Stage, spawn: Callable[..., WorkerProcess], source_records: list[SourceRecord]
) -> None:
    """``produce_timeout_s`` bounds the wait for an ack (Faust's default is 20 minutes): past it the worker exits
    unacknowledged, and once restarted (as an orchestrator would) it publishes everything."""
    stall = ProduceStall(stage.topics.outputs())
    with PartitionedBroker(tmp_path / "tansu-timeout.log", on_request=stall) as broker:
        worker = spawn("timed_out", broker.bootstrap, stage, None, produce_timeout_s="3")

        async def scenario() -> tuple[Traffic, float, int]:
            await stage.create_topics(broker.bootstrap)
            worker.start()
            await asyncio.to_thread(worker.wait_ready)
            async with Traffic("produce_timeout", broker.bootstrap, stage, source_records) as t:
                stall.stalled.set()
                started = time.monotonic()
                t.send(ReplayConfig(count=50, rate=None, seed=43))
                code = await asyncio.to_thread(worker.wait, 60)
                took = time.monotonic() - started
                stall.stalled.clear()
                worker.start()
                await asyncio.to_thread(worker.wait_ready)
                await t.settle(60)
            return t, took, code

        traffic, took, code = asyncio.run(scenario())
        worker.stop()
    outcome = traffic.outcome()
    outcome.extra.update(exit_after_s=round(took, 1), exit_code=code)
    report(outcome)
    assert code != 0 and took < 30, f"the worker exited {code} after {took:.0f} s"
    assert "RequestTimedOutError" in worker.output()
    outcome.assert_clean()
