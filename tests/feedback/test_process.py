"""The feedback process on the real broker and the real Redis: every feedback message ends in one recorded outcome
(joined, too late, or dead-lettered with its reason), across a kill mid-stream, and the live agreement it exports
equals an offline recomputation over the same messages."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import redis

from feedback.store import claim_key
from loadtest.broker import EmbeddedBroker, create_topics
from schemas.topics import TopicSettings
from tests.feedback.kit import (
    MALFORMED,
    TAXONOMY,
    Case,
    FeedbackProcess,
    encode,
    feedback_for,
    published_cases,
    served_folder,
)
from tests.worker.kit import PARTITIONS, produce, read_topics

pytestmark = pytest.mark.timeout(240)


@dataclass(frozen=True)
class Run:
    name: str
    topics: TopicSettings
    process: FeedbackProcess


@pytest.fixture
def run(broker: EmbeddedBroker, redis_url: str, unique: Callable[[str], str], tmp_path: Path) -> Iterator[Run]:
    """A feedback process on private topics of the session broker and a private Redis prefix."""
    name = unique("fb")
    topics = TopicSettings.namespaced(name, partitions=PARTITIONS)
    create_topics(broker.bootstrap, {t: PARTITIONS for t in (topics.enriched, topics.feedback, topics.deadletter)})
    process = FeedbackProcess(name, broker, redis_url, topics, served_folder(tmp_path / "served"), tmp_path).start()
    try:
        yield Run(name, topics, process)
    finally:
        process.stop()


def _published(run: Run, broker: EmbeddedBroker, n: int, seed: int) -> list[Case]:
    """``n`` tickets on the enriched topic, once the process has stored them all."""
    cases = published_cases(run.name, n, seed)
    produce(broker.bootstrap, run.topics.enriched,
            [(c.ticket_id.encode(), c.enriched.model_dump_json().encode()) for c in cases])
    run.process.wait_for(lambda: run.process.metric("triage_feedback_published_total") == n, "published tickets")
    return cases


def _expected(cases: list[Case], sent: list[tuple[Case, bool]]) -> Counter[tuple[str, ...]]:
    """The agreement counters recomputed from the messages alone (published record vs the agent's answer)."""
    expected: Counter[tuple[str, ...]] = Counter()  # counts, compared with the exported floats
    for case, _ in sent:
        triage = case.enriched.triage
        rule = TAXONOMY.rule(case.truth)
        version = triage.model_version
        expected["category", version, rule.category, str(triage.category == rule.category).lower()] += 1
        expected["priority", version, rule.priority.value, str(triage.priority == rule.priority).lower()] += 1
        expected["paging", version, str(triage.priority == "High").lower(), str(rule.priority == "High").lower()] += 1
        if triage.out_of_scope:
            expected["oos", version, str(rule.category != TAXONOMY.out_of_scope_category).lower()] += 1
    return expected


def test_live_agreement_equals_an_offline_recomputation(run: Run, broker: EmbeddedBroker, tmp_path: Path) -> None:
    name, topics, process = run.name, run.topics, run.process
    cases = _published(run, broker, 240, seed=0)
    sent = [(case, i % 3 != 0) for i, case in enumerate(cases[:200])]  # a third by category and priority only
    late = [{"ticket_id": f"{name}-never-{i}", "label": TAXONOMY.intents[i]} for i in range(7)]
    produce(broker.bootstrap, topics.feedback,
            [encode(feedback_for(c, by_label)) for c, by_label in sent] + [encode(m) for m in late]
            + [(k, v) for k, v, _ in MALFORMED])
    total = len(sent) + len(late) + len(MALFORMED)
    process.wait_for(lambda: process.metric("triage_feedback_messages_total") == total, "every outcome")

    assert process.metric("triage_feedback_messages_total", outcome="joined") == len(sent)
    assert process.metric("triage_feedback_messages_total", outcome="too_late") == len(late)
    assert process.metric("triage_feedback_messages_total", outcome="deadlettered") == len(MALFORMED)
    expected = _expected(cases, sent)
    assert sum(v for k, v in expected.items() if k[0] == "category") == len(sent), "the recomputation saw all"
    seen: dict[tuple[str, ...], float] = {}
    for key in expected:
        kind, version, *rest = key
        if kind == "category":
            seen[key] = process.metric("triage_feedback_category_total", model_version=version,
                                       category=rest[0], agree=rest[1])
        elif kind == "priority":
            seen[key] = process.metric("triage_feedback_priority_total", model_version=version,
                                       priority=rest[0], agree=rest[1])
        elif kind == "paging":
            seen[key] = process.metric("triage_feedback_paging_total", model_version=version,
                                       paged=rest[0], should_page=rest[1])
        else:
            seen[key] = process.metric("triage_feedback_out_of_scope_total", model_version=version,
                                       overturned=rest[0])
    assert seen == dict(expected)
    assert 0.0 < process.metric("triage_feedback_category_drift") <= 1.0
    journal = [json.loads(line) for path in (tmp_path / "feedback-data" / "journal").glob("*.jsonl")
               for line in path.read_text().splitlines()]
    assert sorted(row["ticket_id"] for row in journal) == sorted(c.ticket_id for c, _ in sent)
    assert {row["text"] for row in journal} <= {c.text for c in cases}, "only published texts are kept"
    assert all(c.text not in process.output() for c in cases), "no ticket text in the log"


def test_nothing_lost_across_a_kill_mid_stream(run: Run, broker: EmbeddedBroker, redis_url: str) -> None:
    name, topics, process = run.name, run.topics, run.process
    cases = _published(run, broker, 300, seed=1)
    valid: list[tuple[bytes | None, bytes]] = [encode(feedback_for(c, i % 2 == 0)) for i, c in enumerate(cases)]
    valid += [encode({"ticket_id": f"{name}-never-{i}", "label": TAXONOMY.intents[i]}) for i in range(10)]
    bad: list[tuple[bytes | None, bytes]] = [(k, v) for k, v, _ in MALFORMED]
    half = len(valid) // 2
    produce(broker.bootstrap, topics.feedback, valid[:half] + bad[:2])
    process.wait_for(lambda: process.metric("triage_feedback_messages_total") > 0, "the first outcomes")
    process.kill()  # SIGKILL mid-stream: nothing flushed, nothing committed since the last commit
    produce(broker.bootstrap, topics.feedback, valid[half:] + bad[2:])
    process.start()

    store = redis.Redis.from_url(redis_url)
    keys = [claim_key(name, (key or b"").decode(), value) for key, value in valid]

    def outcomes() -> list[bytes | None]:
        return [cast(bytes | None, value) for value in store.mget(keys)]

    process.wait_for(lambda: None not in outcomes(), "an outcome for every valid feedback message", 120)
    recorded = Counter(outcomes())
    assert recorded == {b"joined": len(cases), b"too_late": 10}
    letters = read_topics(broker.bootstrap, [topics.deadletter],
                          lambda records: len({r.value["payload_sha256"] for r in records}) == len(bad))
    codes = {r.value["payload"]: r.value["error"]["code"] for r in letters}  # type: ignore[index]
    assert codes == {v.decode(): code for _, v, code in MALFORMED}
    assert all(r.value["source_topic"] == topics.feedback for r in letters)
    assert store.delete(*keys, *store.keys(f"{name}:pub:*")) > 0
