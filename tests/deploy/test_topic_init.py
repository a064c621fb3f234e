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
    return env


def _run(env: dict[str, str], kafka_bin: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={"PATH": os.environ["PATH"], "KAFKA_BIN": str(kafka_bin), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_slugs_match_the_categories() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("category_slugs=("))
    assert line.removeprefix("category_slugs=(").rstrip(")").split() == [slug(c) for c in load_taxonomy().categories]


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
