"""WorkerSettings: the environment names the deploy files use, their defaults, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.taxonomy import load_taxonomy, slug
from schemas.topics import TopicSettings
from worker.settings import WorkerSettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("TRIAGE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_are_the_documented_ones(clean_env: pytest.MonkeyPatch) -> None:
    s = WorkerSettings()
    assert s.brokers == "localhost:9092" and s.group_id == "ticket-triage"
    assert (s.topics.incoming, s.topics.enriched, s.topics.oncall, s.topics.review, s.topics.deadletter) == (
        "tickets.incoming", "tickets.enriched", "tickets.oncall", "tickets.review", "tickets.deadletter",
    )
    assert s.topics.route("Account/Login") == "tickets.route.account-login"
    assert (s.topics.partitions, s.topics.replication_factor) == (3, 1)
    assert s.model_dir == Path("models/finetuned/latest")
    assert s.batch_wait_ms <= 20
    assert s.redis.url == "redis://localhost:6379/0" and s.redis.key_prefix == "triage" and s.redis.password is None
    assert s.web_port == 6066 and s.max_message_bytes == 1024 * 1024
    assert s.kafka.security_protocol == "PLAINTEXT"
    assert s.thresholds.high_priority is None and s.thresholds.review is None
    assert s.shutdown_grace_s == 30.0
    assert s.session_timeout_s == 10.0, "Tansu answers a group join after half the session timeout"


def test_nested_environment_names(clean_env: pytest.MonkeyPatch) -> None:
    env = {
        "TRIAGE_BROKERS": "k1:9093,k2:9093",
        "TRIAGE_TOPICS__INCOMING": "in",
        "TRIAGE_TOPICS__ROUTE_PREFIX": "r.",
        "TRIAGE_TOPICS__PARTITIONS": "12",
        "TRIAGE_REDIS__PASSWORD": "s3cret",
        "TRIAGE_REDIS__TTL_S": "60",
        "TRIAGE_REDIS__ENABLED": "false",
        "TRIAGE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "TRIAGE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "TRIAGE_KAFKA__SASL_USERNAME": "triage",
        "TRIAGE_KAFKA__SASL_PASSWORD": "pw",
        "TRIAGE_THRESHOLDS__HIGH_PRIORITY": "0.3",
        "TRIAGE_BATCH_SIZE": "32",
        "TRIAGE_MODEL_BACKEND": "noop",
    }
    for name, value in env.items():
        clean_env.setenv(name, value)
    s = WorkerSettings()
    assert s.bootstrap_servers == ["k1:9093", "k2:9093"]
    assert s.topics.incoming == "in" and s.topics.route("Billing") == "r.billing" and s.topics.partitions == 12
    assert s.redis.password is not None and s.redis.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s) and "pw" not in str(s.kafka)
    assert s.redis.ttl_s == 60 and s.redis.enabled is False
    assert s.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert s.thresholds.high_priority == 0.3 and s.batch_size == 32 and s.model_backend == "noop"


def test_sasl_without_credentials_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TRIAGE_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="SASL_USERNAME"):
        WorkerSettings()


def test_outputs_list_every_written_topic() -> None:
    topics = TopicSettings(route_prefix="x.")
    outputs = topics.outputs()
    assert {f"x.{slug(c)}" for c in load_taxonomy().categories} <= set(outputs)
    assert {topics.enriched, topics.oncall, topics.review, topics.deadletter} <= set(outputs)
    assert topics.incoming not in outputs and len(outputs) == len(set(outputs))


def test_namespaced_topics_keep_every_name_private() -> None:
    topics = TopicSettings.namespaced("run-1", partitions=6)
    assert topics.incoming == "run-1.incoming" and topics.partitions == 6
    assert all(name.startswith("run-1.") for name in topics.outputs())
    assert len(set(topics.outputs())) == len(topics.outputs())
