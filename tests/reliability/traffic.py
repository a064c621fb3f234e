"""Replay known tickets through running workers and account for every one: the scenarios' common core.

The replay tool sends, its collector matches outputs to what was sent (lost, duplicates, wrong codes),
and a raw tap keeps every output record's key and bytes so a scenario can also prove that duplicates
are byte-identical, that every enriched ticket reached exactly its routes, and that each record is
the ticket that was sent plus the triage the model gives its text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice

from aiokafka import AIOKafkaConsumer, TopicPartition

from inference.environment import flatten_env
from loadtest.broker import create_topics
from loadtest.collector import Collector
from loadtest.ledger import Ledger
from loadtest.replay import ReplayConfig, Replayer, ReplayStats, plan_messages
from loadtest.report import Counts, build_report
from loadtest.source import SourceRecord
from schemas import DeadLetter, EnrichedTicket, Priority, Triage, decode_ticket
from schemas.taxonomy import load_taxonomy
from schemas.topics import TopicSettings
from tests.names import unique_name

__all__ = ["Outcome", "Stage", "Tap", "TapRecord", "Traffic", "check_routes"]


@dataclass(frozen=True)
class Stage:
    """One scenario's private topics and consumer group, as topic settings and as the worker's environment."""

    base: str
    partitions: int = 4

    @property
    def group(self) -> str:
        return f"{self.base}-group"

    @property
    def topics(self) -> TopicSettings:
        return TopicSettings.namespaced(self.base, partitions=self.partitions)

    def worker_env(self) -> dict[str, str]:
        return flatten_env({"group_id": self.group, "topics": self.topics.model_dump()})

    async def create_topics(self, bootstrap: str) -> None:
        """Its incoming and output topics, up front, so the tap and the worker agree on partitions from the
        first record."""
        names = [self.topics.incoming, *self.topics.outputs()]
        await asyncio.to_thread(create_topics, bootstrap, dict.fromkeys(names, self.partitions))


@dataclass(frozen=True)
class TapRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Tap:
    """Every record of the (fresh) output topics from offset 0, kept raw: key and bytes."""

    def __init__(self, brokers: str, topics: Sequence[str], partitions: int) -> None:
        self._partitions = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=brokers,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        self.records: list[TapRecord] = []

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        for tp in self._partitions:
            self._consumer.seek(tp, 0)

    async def poll(self) -> int:
        batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
        for tp, records in batches.items():
            self.records.extend(
                TapRecord(tp.topic, tp.partition, r.offset, r.key, r.value or b"") for r in records
            )
        return sum(len(r) for r in batches.values())

    async def stop(self) -> None:
        await self._consumer.stop()


@dataclass
class Outcome:
    """What one scenario measured: the collector's counts plus every problem the raw records show."""

    scenario: str
    counts: Counts
    problems: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def summary(self) -> str:
        c = self.counts
        line = (
            f"scenario={self.scenario} sent={c.produced} enriched={c.enriched} dead={c.dead_lettered} "
            f"lost={c.lost} duplicates={c.duplicates}"
        )
        return " ".join([line, *(f"{k}={v}" for k, v in self.extra.items())])

    def assert_clean(self) -> None:
        """Nothing lost, nothing misrouted, nothing foreign, every duplicate identical."""
        c = self.counts
        assert c.produced > 0, "nothing was produced"
        assert c.send_failed == 0, f"{c.send_failed} messages never reached the broker (producer gave up)"
        assert c.lost == 0, f"{c.lost} of {c.produced} messages lost: {self.summary()}"
        assert c.dead_lettered_unexpected == 0, f"{c.dead_lettered_unexpected} valid tickets dead-lettered"
        assert c.malformed_enriched == 0, f"{c.malformed_enriched} bad messages were enriched"
        assert c.dead_letter_code_mismatches == 0, (
            f"{c.dead_letter_code_mismatches} dead letters have a wrong code"
        )
        assert c.foreign == 0, f"{c.foreign} output records match nothing that was sent"
        assert c.schema_errors == 0, f"{c.schema_errors} output records break their topic's schema"
        assert not self.problems, f"{len(self.problems)} problems, first: " + "; ".join(self.problems[:5])


Reference = Callable[[list[str]], list[Triage]]
VersionOf = Callable[[str], str | frozenset[str]]


@dataclass
class _Wave:
    """One replay: its own run id (the prefix of its ticket ids), config and thread."""

    run_id: str
    config: ReplayConfig
    replayer: Replayer
    future: asyncio.Future[ReplayStats]


class Traffic:
    """Replays ("waves") through the workers of a fresh ``Stage``, collected until each message is resolved.

    All waves share one ledger, so a late duplicate of an early wave is still matched. The stage's topics
    must be new: the raw tap reads them from offset 0 (Tansu's ``ListOffsets`` answers the base offset of
    the last batch, not the end, so "from the end" would replay the last batch of earlier traffic).
    """

    def __init__(self, name: str, brokers: str, stage: Stage, records: list[SourceRecord]) -> None:
        self.name = name
        self.brokers = brokers
        self.stage = stage
        self.records = records
        self.ledger = Ledger()
        self.collector = Collector([brokers], stage.topics, self.ledger, topic_refresh_s=0.5)
        self.tap = Tap(brokers, stage.topics.outputs(), stage.partitions)
        self.waves: list[_Wave] = []
        self._stop = threading.Event()
        self._pump: asyncio.Task[None] | None = None
        self.pump_errors: list[str] = []

    @property
    def sent(self) -> int:
        return sum(w.replayer.stats.sent for w in self.waves)

    @property
    def resolved(self) -> int:
        return self.ledger.resolved

    @property
    def replay_done(self) -> bool:
        return all(w.replayer.done.is_set() for w in self.waves)

    async def start(self) -> None:
        await self.collector.start()
        await self.tap.start()
        self._pump = asyncio.create_task(self._pump_forever())

    def send(self, config: ReplayConfig) -> str:
        """Start one replay in its own thread (``settle`` waits for it); returns its run id, each ticket id's prefix."""
        run_id = unique_name("run")
        replayer = Replayer(
            [self.brokers], self.stage.topics.incoming, self.records, config, self.ledger, run_id
        )
        future = asyncio.get_running_loop().run_in_executor(None, replayer.run, self._stop)
        self.waves.append(_Wave(run_id, config, replayer, future))
        return run_id

    async def _pump_forever(self) -> None:
        while True:
            try:
                await self.collector.poll(timeout_ms=100)
                await self.tap.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broker outage makes fetches fail; the clients reconnect on their own
                self.pump_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.2)

    async def until(self, what: str, predicate: Callable[[], bool], timeout: float) -> float:
        """Wait for a condition; fail saying what was awaited and where the run stood. Returns the wait."""
        started = time.monotonic()
        while not predicate():
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"{self.name}: timed out after {timeout:.0f}s waiting for {what} "
                    f"(sent={self.sent} resolved={self.resolved} pending={self.ledger.pending}; "
                    f"first pending: {self._pending_sample()})"
                )
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def _pending_sample(self, limit: int = 5) -> list[str]:
        """Unresolved messages as ``ticket_id kind partition/offset`` and the output topics where the raw tap saw
        them (none: no worker published them; some: the collector missed what was published)."""
        pending = [e for e in self.ledger.entries if e.outcome is None and e.acked is not False][:limit]
        seen: dict[str, set[str]] = defaultdict(set)
        for record in self.tap.records:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                obj = json.loads(record.value)
                seen[str(obj["ticket_id"])].add(record.topic)
                seen[str(obj.get("payload_sha256"))].add(record.topic)
        return [
            f"{e.ticket_id} {e.kind} {'/'.join(map(str, e.position or ()))} "
            f"tap={sorted(seen[e.ticket_id] | seen[e.sha256]) or 'none'}"
            for e in pending
        ]

    async def settle(self, timeout: float, quiet_s: float = 1.5) -> float:
        """Wait until every replay has finished and every message is resolved, then for late duplicates.

        Returns:
            Seconds until the last message was resolved.
        """
        started = time.monotonic()
        await self.until("the replay to finish", lambda: self.replay_done, timeout)
        await asyncio.gather(*(w.future for w in self.waves))
        await self.until(
            "every message to be triaged or dead-lettered", lambda: self.ledger.pending == 0, timeout
        )
        took = time.monotonic() - started
        await asyncio.sleep(quiet_s)
        return took

    async def stop(self) -> None:
        self._stop.set()
        for wave in self.waves:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(wave.future, 30)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.collector.stop()
        await self.tap.stop()

    async def __aenter__(self) -> Traffic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def payloads(self) -> dict[str, bytes]:
        """The exact bytes sent, by ticket id, rebuilt from each replay's seeded plan and send times."""
        sent: dict[str, bytes] = {}
        for wave in self.waves:
            plan = islice(plan_messages(self.records, wave.config, wave.run_id), wave.replayer.stats.sent)
            for planned in plan:
                entry = self.ledger.find(planned.ticket_id)
                if entry is not None:
                    sent[planned.ticket_id] = planned.encode(wave.run_id, entry.sent_at)
        return sent

    def outcome(self, reference: Reference | None = None, version_of: VersionOf | None = None) -> Outcome:
        """Counts from the replay tool's report, plus the raw-record checks.

        Args:
            reference: Triage of texts by the same checkpoint in this process; when given, each enriched
                record's labels must match it (None for the no-op backend).
            version_of: The model version (or versions) each ticket id may carry; default the reference's.
        """
        first = self.waves[0]
        report = build_report(
            first.run_id, first.config, [self.brokers], self.stage.topics, self.ledger, self.collector
        )
        outcome = Outcome(self.name, report.counts)
        outcome.problems.extend(self._tap_saw_everything())
        outcome.problems.extend(check_records(self, reference, version_of))
        if self.pump_errors:
            outcome.extra["pump_errors"] = len(self.pump_errors)
        return outcome

    def _tap_saw_everything(self) -> list[str]:
        """The raw tap holds every ticket the collector resolved, so the record checks do not run on too little."""
        tapped: dict[str, set[str]] = {"enriched": set(), "deadletter": set()}
        topics = self.stage.topics
        for record in self.tap.records:
            if record.topic == topics.enriched:
                tapped["enriched"].add(_ticket_id(record.value))
            elif record.topic == topics.deadletter:
                tapped["deadletter"].add(DeadLetter.model_validate_json(record.value).payload_sha256)
        missing = [
            f"{e.ticket_id} ({e.outcome})" for e in self.ledger.entries
            if (e.outcome == "enriched" and e.ticket_id not in tapped["enriched"])
            or (e.outcome == "deadletter" and e.sha256 not in tapped["deadletter"])
        ]
        if not missing:
            return []
        errors = f"; pump errors: {self.pump_errors[-3:]}" if self.pump_errors else ""
        return [f"the raw tap missed {len(missing)} resolved messages, e.g. {missing[:3]}{errors}"]


def check_records(traffic: Traffic, reference: Reference | None, version_of: VersionOf | None = None) -> list[str]:
    """Every problem the raw output records show; empty when the run was clean."""
    topics = traffic.stage.topics
    by_topic: dict[str, list[TapRecord]] = defaultdict(list)
    for record in traffic.tap.records:
        by_topic[record.topic].append(record)
    problems = _identical_duplicates(by_topic, topics)
    enriched = _first_by_ticket(by_topic[topics.enriched])
    problems += check_routes(by_topic, topics, enriched)
    problems += _faithful(traffic, enriched, reference, version_of)
    problems += _dead_letters_exact(traffic, by_topic[topics.deadletter])
    return problems


def _ticket_id(value: bytes) -> str:
    return str(json.loads(value)["ticket_id"])


def _first_by_ticket(records: list[TapRecord]) -> dict[str, TapRecord]:
    first: dict[str, TapRecord] = {}
    for record in records:
        first.setdefault(_ticket_id(record.value), record)
    return first


def _differing_fields(a: bytes, b: bytes) -> list[str]:
    """Dotted paths of the JSON fields two records disagree on (``<byte order>`` if only order differs)."""

    def walk(x: object, y: object, path: str) -> list[str]:
        if isinstance(x, dict) and isinstance(y, dict):
            return [p for k in sorted(set(x) | set(y)) for p in walk(x.get(k), y.get(k), f"{path}{k}.")]
        return [] if x == y else [path.rstrip(".")]

    return walk(json.loads(a), json.loads(b), "") or ["<byte order>"]


def _identical_duplicates(by_topic: dict[str, list[TapRecord]], topics: TopicSettings) -> list[str]:
    problems = []
    for topic, records in by_topic.items():
        groups: dict[str, list[TapRecord]] = defaultdict(list)
        for r in records:
            if topic == topics.deadletter:
                letter = DeadLetter.model_validate_json(r.value)
                groups[f"{letter.source_partition}@{letter.source_offset}"].append(r)
            else:
                groups[_ticket_id(r.value)].append(r)
        for name, copies in groups.items():
            first = copies[0]
            for other in copies[1:]:
                if other.key != first.key:
                    problems.append(
                        f"{topic}: {name} redelivered with key {other.key!r}, first {first.key!r}"
                    )
                elif other.value != first.value:
                    fields = [
                        f
                        for f in _differing_fields(first.value, other.value)
                        if not (topic == topics.deadletter and f == "failed_at")
                    ]
                    if fields:
                        problems.append(f"{topic}: {name} redelivered with different {', '.join(fields)}")
    return problems


def check_routes(
    by_topic: dict[str, list[TapRecord]], topics: TopicSettings, enriched: dict[str, TapRecord]
) -> list[str]:
    """Each enriched ticket on its category's route, on-call iff High, review iff flagged; nothing else."""
    expected: dict[str, set[str]] = defaultdict(set)
    for ticket_id, record in enriched.items():
        triage = EnrichedTicket.model_validate_json(record.value).triage
        expected[topics.route(triage.category)].add(ticket_id)
        if triage.priority is Priority.HIGH:
            expected[topics.oncall].add(ticket_id)
        if triage.needs_review:
            expected[topics.review].add(ticket_id)
    problems = []
    for topic in [*(topics.route(c) for c in load_taxonomy().categories), topics.oncall, topics.review]:
        seen = {_ticket_id(r.value) for r in by_topic[topic]}
        missing, extra = expected[topic] - seen, seen - expected[topic]
        if missing:
            problems.append(f"{topic}: {len(missing)} tickets missing, e.g. {sorted(missing)[:3]}")
        if extra:
            problems.append(f"{topic}: {len(extra)} tickets that do not belong, e.g. {sorted(extra)[:3]}")
        for r in by_topic[topic]:
            original = enriched.get(_ticket_id(r.value))
            if original is not None and (r.value != original.value or r.key != original.key):
                problems.append(f"{topic}: record of {_ticket_id(r.value)} differs from its enriched record")
                break
    return problems


def _faithful(
    traffic: Traffic,
    enriched: dict[str, TapRecord],
    reference: Reference | None,
    version_of: VersionOf | None,
) -> list[str]:
    """Each enriched record is the sent ticket, every field kept, plus the triage its text deserves."""
    payloads = traffic.payloads()
    problems: list[str] = []
    rows: list[tuple[str, EnrichedTicket]] = []
    for ticket_id, record in enriched.items():
        entry = traffic.ledger.find(ticket_id)
        raw = payloads.get(ticket_id)
        if entry is None or raw is None:
            problems.append(f"{ticket_id}: enriched, but not a ticket this run sent (or its payload cannot be rebuilt)")
            continue
        if hashlib.sha256(raw).hexdigest() != entry.sha256:
            problems.append(f"cannot rebuild the payload of {ticket_id}")
            continue
        sent = decode_ticket(raw).model_dump(mode="json")
        got = EnrichedTicket.model_validate_json(record.value)
        if got.model_dump(mode="json", exclude={"triage"}) != sent:
            problems.append(f"{ticket_id}: enriched record does not carry the ticket as sent")
        if record.key != ticket_id.encode():
            problems.append(f"{ticket_id}: enriched record keyed {record.key!r}, not by its ticket id")
        rows.append((ticket_id, got))
    if reference is not None and enriched and not rows:
        problems.append(f"none of the {len(enriched)} enriched records could be checked against the reference")
    if reference is not None and rows:
        expected = reference([got.text for _, got in rows])
        for (ticket_id, got), want in zip(rows, expected, strict=True):
            have = got.triage
            same = (have.category, have.priority, have.intent, have.needs_review) == (
                want.category,
                want.priority,
                want.intent,
                want.needs_review,
            )
            close = abs(have.confidence.intent - want.confidence.intent) < 1e-3
            if not (same and close):
                problems.append(
                    f"{ticket_id}: triage {have.category}/{have.priority}/{have.intent} differs from "
                    f"the checkpoint's {want.category}/{want.priority}/{want.intent}"
                )
            version = version_of(ticket_id) if version_of is not None else want.model_version
            if have.model_version not in ({version} if isinstance(version, str) else version):
                problems.append(f"{ticket_id}: triaged by model {have.model_version}, expected {version}")
    return problems


def _dead_letters_exact(traffic: Traffic, records: list[TapRecord]) -> list[str]:
    """Each dead letter keeps the bad payload byte-exact (or its hash when cut) and says why."""
    problems = []
    by_sha = {e.sha256: e for e in traffic.ledger.entries}
    for r in records:
        letter = DeadLetter.model_validate_json(r.value)
        entry = by_sha.get(letter.payload_sha256)
        if entry is None:
            problems.append(
                f"dead letter of a payload never sent: sha256 {letter.payload_sha256[:12]}, key {r.key!r}, "
                f"from {letter.source_topic}[{letter.source_partition}]@{letter.source_offset}, "
                f"at {r.partition}@{r.offset}"
            )
            continue
        if not letter.error.message:
            problems.append(f"dead letter of {entry.ticket_id} has no reason")
        kept = letter.raw_payload()
        if letter.payload_size != len(kept) and not letter.payload_truncated:
            problems.append(f"dead letter of {entry.ticket_id} lost bytes without saying so")
        if not letter.payload_truncated and hashlib.sha256(kept).hexdigest() != entry.sha256:
            problems.append(f"dead letter of {entry.ticket_id} does not keep the payload byte-exact")
    return problems
