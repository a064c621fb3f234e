"""deploy/kafka/create-topics.sh (the compose topic-init job) creates exactly the worker's topics."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from loadtest.broker import EmbeddedBroker
from schemas.taxonomy import load_taxonomy, slug
from tests.deploy.stack import REPO, load_compose, service_env
from worker.settings import WorkerSettings

SCRIPT = REPO / "deploy" / "kafka" / "create-topics.sh"
STUB = Path(__file__).with_name("kafka_topics_stub.py")


@pytest.fixture
def kafka_bin(tmp_path: Path) -> Path:
    """A folder whose ``kafka-topics.sh`` runs the kafka-python stand-in."""
    wrapper = tmp_path / "kafka-topics.sh"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUB}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return tmp_path


def _topic_init_env(broker: EmbeddedBroker, unique: Callable[[str], str]) -> dict[str, str]:
    """The compose topic-init environment, with every topic name made unique to this test."""
    env = service_env(load_compose({"REDIS_PASSWORD": "x"})["services"]["topic-init"])
    token = unique("t")
    for key, value in env.items():
        if key.startswith("TRIAGE_TOPICS__") and key not in (
            "TRIAGE_TOPICS__PARTITIONS",
            "TRIAGE_TOPICS__REPLICATION_FACTOR",
        ):
            env[key] = f"{token}.{value}"
    env["TRIAGE_BROKERS"] = broker.bootstrap
    env["TAXONOMY_FILE"] = str(REPO / "schemas" / "taxonomy.csv")  # compose mounts it there
    return env


def _run(env: dict[str, str], kafka_bin: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={"PATH": os.environ["PATH"], "KAFKA_BIN": str(kafka_bin), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _routes_of(taxonomy: Path, kafka_bin: Path) -> set[str]:
    """The route topics the script would create for ``taxonomy`` (``kafka-topics.sh`` replaced by ``echo``)."""
    echo = kafka_bin / "echo-bin"
    echo.mkdir()
    (echo / "kafka-topics.sh").write_text('#!/bin/sh\necho "$@"\n', encoding="utf-8")
    (echo / "kafka-topics.sh").chmod(0o755)
    env = {"TRIAGE_BROKERS": "b:9092", "TAXONOMY_FILE": str(taxonomy), "TRIAGE_TOPICS__ROUTE_PREFIX": "r."}
    result = _run(env, echo)
    assert result.returncode == 0, result.stderr
    return {word for word in result.stdout.split() if word.startswith("r.")}


def test_routes_follow_the_taxonomy_file_like_the_worker(kafka_bin: Path, tmp_path: Path) -> None:
    default = REPO / "schemas" / "taxonomy.csv"
    assert _routes_of(default, kafka_bin) == {f"r.{slug(c)}" for c in load_taxonomy(default).categories}
    team = tmp_path / "taxonomy.csv"
    team.write_text('category,label,priority\n"Card Ops, Europe",jam,Low\nFAQ & Help!,fire,High\n', encoding="utf-8")
    (kafka_bin / "echo-bin").rename(tmp_path / "used")
    expected = {f"r.{slug(c)}" for c in load_taxonomy(team).categories}
    assert _routes_of(team, kafka_bin) == expected == {"r.card-ops-europe", "r.faq-help", "r.out-of-scope"}


def test_creates_every_worker_topic_idempotently(
    broker: EmbeddedBroker, unique: Callable[[str], str], kafka_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _topic_init_env(broker, unique)
    for key in [k for k in os.environ if k.startswith("TRIAGE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    topics = WorkerSettings().topics
    expected = {topics.incoming, *topics.outputs()}

    first = _run(env, kafka_bin)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"PartitionCount: {topics.partitions}" in first.stdout

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(sorted(expected))}
    finally:
        admin.close()
    assert described == {name: 3 for name in expected}, "issue #8: 3 partitions for the input topic"

    second = _run(env, kafka_bin)
    assert second.returncode == 0, "re-running the job on an existing cluster must succeed"
    assert "Created topic" not in second.stdout


def test_fails_without_brokers(kafka_bin: Path) -> None:
    result = _run({}, kafka_bin)
    assert result.returncode != 0
    assert "TRIAGE_BROKERS" in result.stderr
