"""Routing: which topics a triaged ticket lands on, its key, headers and value; and, through the real worker,
the routes of a team's own taxonomy, created from the served checkpoint at start and on a hot reload."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from inference.checkpoint import MANIFEST, publish, resolve_checkpoint
from loadtest.broker import EmbeddedBroker
from schemas.enums import Priority
from schemas.messages import Confidence, EnrichedTicket, IntentScore, Ticket, Triage
from schemas.topics import TopicSettings
from tests.teams import write_labelled_team, write_pairs_team
from tests.tiny_model import trained
from tests.worker.kit import (
    Ticketed,
    keys_seen,
    produce,
    read_topics,
    ticket,
    topic_partitions,
    topic_settings,
    worker_env,
)
from tests.workers import WorkerProcess
from trainer.data import load_data
from worker.records import InRecord
from worker.routing import destinations, enriched_records, enriched_value, served_categories

SOURCE = InRecord("tickets.incoming", 0, 7, b"k", b"{}", None)


def make_triage(category: str, priority: Priority, review: bool) -> Triage:
    return Triage(
        category=category,
        priority=priority,
        intent="lost_or_stolen_card",
        confidence=Confidence(category=0.9, intent=0.8, priority=0.7),
        top_intents=[IntentScore(intent="lost_or_stolen_card", probability=0.8)],
        needs_review=review,
        model_version="v1",
    )


def test_destinations_follow_priority_and_review() -> None:
    topics = TopicSettings()
    assert destinations(make_triage("Billing", Priority.LOW, False), topics) == [
        "tickets.enriched", "tickets.route.billing",
    ]
    assert destinations(make_triage("Technical", Priority.HIGH, True), topics) == [
        "tickets.enriched", "tickets.route.technical", "tickets.oncall", "tickets.review",
    ]
    assert "tickets.oncall" not in destinations(make_triage("Technical", Priority.MEDIUM, False), topics)


def test_records_are_keyed_by_ticket_id_with_routing_headers() -> None:
    ticket = Ticket(ticket_id="T-1", text="my card was stolen", channel="app")
    triage = make_triage("Account/Login", Priority.HIGH, False)
    records = enriched_records(ticket, triage, TopicSettings(), SOURCE)
    assert [r.topic for r in records] == ["tickets.enriched", "tickets.route.account-login", "tickets.oncall"]
    for record in records:
        assert record.key == b"T-1" and record.source is SOURCE
        headers = dict(record.headers)
        assert headers["model_version"] == b"v1"
        assert headers["category"] == b"Account/Login" and headers["priority"] == b"High"
    assert len({r.value for r in records}) == 1


def test_enriched_value_is_the_enriched_ticket_document() -> None:
    ticket = Ticket.model_validate(
        {"ticket_id": "T-2", "text": "café  card\u0007", "metadata": {"a": [1, 2]}, "crm_ref": "X9"}
    )
    triage = make_triage("Billing", Priority.LOW, True)
    value = enriched_value(ticket, triage)
    expected = EnrichedTicket.from_ticket(ticket, triage).model_dump_json()
    assert json.loads(value) == json.loads(expected)
    assert EnrichedTicket.model_validate_json(value).triage == triage


def test_a_ticket_field_named_triage_is_replaced_not_duplicated() -> None:
    ticket = Ticket.model_validate({"ticket_id": "T-3", "text": "hello", "triage": "spoofed"})
    value = enriched_value(ticket, make_triage("Billing", Priority.LOW, False))
    assert value.count(b'"triage"') == 1
    assert json.loads(value)["triage"]["category"] == "Billing"


# --- Taxonomies of a team's own, through the real worker on the real broker --------------------------------------


@dataclass(frozen=True)
class Team:
    """A team's trained tiny checkpoint, the folder it came from, and its categories."""

    checkpoint: Path
    folder: Path

    @property
    def categories(self) -> tuple[str, ...]:
        return served_categories(self.checkpoint)

    def test_texts(self, count: int) -> list[str]:
        return load_data(self.folder, "unused").test.texts[:count]


def _team(tmp_path_factory: pytest.TempPathFactory, name: str, write: Callable[[Path, Path], Path], data: Path) -> Team:
    """Write the team's folder and train its tiny checkpoint once per run (shared by xdist workers).

    One epoch and no outlier exposure: these tests check where tickets are routed, not how well they are triaged.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        root = root.parent
    folder = write(data, root / f"{name}-data")
    return Team(trained(root / f"{name}-models", folder, epochs=1.0, outlier_weight=0.0), folder)


@pytest.fixture(scope="session")
def labelled_team(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Team:
    return _team(tmp_path_factory, "labelled-team", write_labelled_team, data_dir)


@pytest.fixture(scope="session")
def pairs_team(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Team:
    return _team(tmp_path_factory, "pairs-team", write_pairs_team, data_dir)


def _routed(records: list[Ticketed], topics: TopicSettings, wanted: set[bytes]) -> dict[bytes, set[str]]:
    """Per wanted ticket, the routes it was read on."""
    out: dict[bytes, set[str]] = {}
    for record in records:
        if record.key in wanted and record.topic.startswith(topics.route_prefix):
            out.setdefault(record.key, set()).add(record.topic)
    return out


def _serve_and_check(worker: WorkerProcess, bootstrap: str, topics: TopicSettings, team: Team, prefix: str,
                     texts: list[str]) -> None:
    """Send ``texts``; each ticket lands on its category's route (one of the team's) and on no other route."""
    messages = [ticket(f"{prefix}-{i}", text) for i, text in enumerate(texts)]
    produce(bootstrap, topics.incoming, messages)
    wanted = {key for key, _ in messages}
    outputs = [topics.enriched, *(topics.route(c) for c in team.categories)]

    def settled(out: list[Ticketed]) -> bool:
        return keys_seen(out, topics.enriched) >= wanted and set(_routed(out, topics, wanted)) >= wanted

    records = read_topics(bootstrap, outputs, until=settled)
    enriched = {r.key: r.value["triage"] for r in records if r.topic == topics.enriched and r.key in wanted}
    assert set(enriched) == wanted, f"lost: {sorted(wanted - set(enriched))}"
    routed = _routed(records, topics, wanted)
    for key, triage in enriched.items():
        assert isinstance(triage, dict) and triage["category"] in team.categories
        assert routed[key] == {topics.route(triage["category"])}, (key, triage["category"], routed[key])


TRAINS = pytest.mark.timeout(900)
"""The first test to ask for a team trains its tiny checkpoint (a minute or two on 2 idle cores)."""


@TRAINS
@pytest.mark.parametrize("team_fixture", ["labelled_team", "pairs_team"])
def test_a_team_taxonomy_is_served_with_a_route_per_category(
    team_fixture: str, request: pytest.FixtureRequest, broker: EmbeddedBroker, redis_url: str, tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    team: Team = request.getfixturevalue(team_fixture)
    name = unique("team")
    topics = topic_settings(name)
    env = worker_env(broker, redis_url, tmp_path / "state", topics, team.checkpoint, name)
    worker = WorkerProcess("worker", env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        created = set(topic_partitions(broker.bootstrap))
        assert {topics.route(c) for c in team.categories} <= created, "every route of the served taxonomy"
        assert topics.route("Billing") not in created, "no route of the default taxonomy"
        texts = [*team.test_texts(40), "hello there", "what is the capital of Peru"]
        _serve_and_check(worker, broker.bootstrap, topics, team, "t", texts)
    finally:
        worker.stop()


@TRAINS
def test_a_hot_reload_to_another_category_set_routes_the_next_tickets_to_its_routes(
    labelled_team: Team, pairs_team: Team, broker: EmbeddedBroker, redis_url: str, tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    root = tmp_path / "models"
    root.mkdir()
    publish_copy(labelled_team.checkpoint, root, "v1")
    name = unique("reroute")
    topics = topic_settings(name)
    env = worker_env(broker, redis_url, tmp_path / "state", topics, root / "latest", name,
                     TRIAGE_RELOAD_INTERVAL_S="0.5")
    worker = WorkerProcess("worker", env, tmp_path / "worker.log").start()
    try:
        assert worker.wait_ready()["model_version"] == "v1"
        _serve_and_check(worker, broker.bootstrap, topics, labelled_team, "before", labelled_team.test_texts(20))
        assert not set(labelled_team.categories) & set(pairs_team.categories)
        publish_copy(pairs_team.checkpoint, root, "v2")
        deadline = time.monotonic() + 60
        while worker.metric("triage_model_info", version="v2") != 1:
            assert time.monotonic() < deadline, "the worker did not reload"
            time.sleep(0.2)
        assert {topics.route(c) for c in pairs_team.categories} <= set(topic_partitions(broker.bootstrap))
        _serve_and_check(worker, broker.bootstrap, topics, pairs_team, "after", pairs_team.test_texts(20))
    finally:
        worker.stop()


def publish_copy(source: Path, root: Path, version: str) -> None:
    """A copy of ``source`` published as ``root/version`` (manifest version rewritten), ``latest`` moved to it."""
    staging = root / f".staging-{version}"
    shutil.copytree(resolve_checkpoint(source), staging)
    manifest = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    (staging / MANIFEST).write_text(json.dumps({**manifest, "version": version}), encoding="utf-8")
    publish(staging, root, version)
