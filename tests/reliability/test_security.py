"""Security settings reach the clients, and no code path loads pickled or remote code.

Kafka SSL/SASL and Redis TLS + password cannot be exercised against a real server here (no TLS broker),
so these tests check that the values reach the configuration of the Kafka and Redis clients the worker
builds. That no ticket text reaches logs, metrics or Redis is checked on a real worker run in
``test_corpus_through_worker.py``.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
from pathlib import Path

import certifi
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from redis.asyncio.connection import SSLConnection

from feedback.app import create_app as create_feedback_app
from feedback.settings import FeedbackSettings
from inference.checkpoint import CheckpointError, resolve_checkpoint
from worker.app import create_app
from worker.cache import RedisStore
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean ``TRIAGE_*`` environment the test fills in, as an operator would."""
    for name in list(os.environ):
        if name.startswith("TRIAGE_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("process", ["worker", "feedback"])
def test_kafka_sasl_ssl_settings_reach_the_kafka_clients(env: pytest.MonkeyPatch, tmp_path: Path, process: str) -> None:
    """The worker and the feedback process read the same ``TRIAGE_KAFKA__*`` block."""
    env.setenv("TRIAGE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    env.setenv("TRIAGE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    env.setenv("TRIAGE_KAFKA__SASL_USERNAME", "ticket-triage")
    env.setenv("TRIAGE_KAFKA__SASL_PASSWORD", "kafka-secret-123")
    env.setenv("TRIAGE_KAFKA__SSL_CAFILE", certifi.where())
    env.setenv("TRIAGE_STATE_DIR", str(tmp_path))
    env.setenv("TRIAGE_FEEDBACK__STATE_DIR", str(tmp_path / "feedback"))
    served = tmp_path / "checkpoint"  # the feedback process reads the served checkpoint's taxonomy only
    served.mkdir()
    (served / "taxonomy.csv").write_bytes((REPO / "schemas" / "taxonomy.csv").read_bytes())
    env.setenv("TRIAGE_MODEL_DIR", str(served))
    settings = WorkerSettings() if process == "worker" else FeedbackSettings()
    assert "kafka-secret-123" not in repr(settings), "the password is a secret, never printed"
    app = create_app(settings) if isinstance(settings, WorkerSettings) else create_feedback_app(settings)[0]
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials)

    async def client_config() -> dict[str, object]:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers="kafka.example:9093", **auth)
        client = producer.client
        return {
            "protocol": client._security_protocol,
            "mechanism": client._sasl_mechanism,
            "user": client._sasl_plain_username,
            "password": client._sasl_plain_password,
            "context": client._ssl_context,
        }

    config = asyncio.run(client_config())
    assert config["protocol"] == "SASL_SSL"
    assert config["mechanism"] == "SCRAM-SHA-512"
    assert (config["user"], config["password"]) == ("ticket-triage", "kafka-secret-123")
    context = config["context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs(), "the CA bundle was loaded"


def test_kafka_ssl_only_settings_reach_the_kafka_clients(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("TRIAGE_KAFKA__SECURITY_PROTOCOL", "SSL")
    env.setenv("TRIAGE_KAFKA__SSL_CAFILE", certifi.where())
    env.setenv("TRIAGE_STATE_DIR", str(tmp_path))
    auth = credentials_to_aiokafka_auth(create_app(WorkerSettings()).conf.broker_credentials)
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_redis_tls_url_and_password_reach_the_redis_client(env: pytest.MonkeyPatch) -> None:
    env.setenv("TRIAGE_REDIS__URL", "rediss://cache.example:6380/2")
    env.setenv("TRIAGE_REDIS__PASSWORD", "redis-secret-456")
    settings = WorkerSettings()
    assert "redis-secret-456" not in repr(settings)
    store = RedisStore(settings.redis)
    pool = store.client.connection_pool
    assert pool.connection_class is SSLConnection, "rediss:// must connect over TLS"
    assert pool.connection_kwargs["password"] == "redis-secret-456"
    assert (pool.connection_kwargs["host"], pool.connection_kwargs["port"], pool.connection_kwargs["db"]) == (
        "cache.example",
        6380,
        2,
    )


def _pickled_only(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "pickled"
    folder.mkdir()
    real = tiny_checkpoint.resolve()
    for item in real.iterdir():
        if item.is_file() and item.name != "model.safetensors":
            (folder / item.name).write_bytes(item.read_bytes())
    (folder / "pytorch_model.bin").write_bytes((real / "model.safetensors").read_bytes())
    return folder


def test_a_checkpoint_with_only_pickled_weights_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = _pickled_only(tiny_checkpoint, tmp_path)
    with pytest.raises(CheckpointError, match="pickled"):
        resolve_checkpoint(folder)
    from inference.classifier import Classifier

    with pytest.raises(CheckpointError, match="pickled"):
        Classifier.load(folder)


def test_the_worker_refuses_to_start_on_pickled_weights(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = _pickled_only(tiny_checkpoint, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update(
        {"TRIAGE_MODEL_DIR": str(folder), "TRIAGE_BROKERS": "127.0.0.1:1", "TRIAGE_STATE_DIR": str(tmp_path)}
    )
    done = subprocess.run(
        [sys.executable, "-m", "worker"], cwd=REPO, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 2, done.stderr.decode()[-2000:]
    assert b"pickled weights" in done.stdout + done.stderr


def _product_sources() -> list[Path]:
    """Every module of every top-level package but the tests, so a package added later is checked too."""
    packages = [init.parent for init in REPO.glob("*/__init__.py") if init.parent.name != "tests"]
    assert {"schemas", "triage", "worker"} <= {package.name for package in packages}, "the packages were found"
    return [path for package in packages for path in package.rglob("*.py")]


def _call_arguments(source: str, start: int) -> str:
    """The text of a call's arguments, from just after its opening parenthesis to the matching one."""
    depth = 1
    for index in range(start, len(source)):
        depth += {"(": 1, ")": -1}.get(source[index], 0)
        if depth == 0:
            return source[start:index]
    return source[start:]


def test_no_code_trusts_remote_code() -> None:
    offenders = []
    for path in _product_sources():
        for match in re.finditer(r"trust_remote_code\s*=\s*(\w+)", path.read_text(encoding="utf-8")):
            if match.group(1) != "False":
                offenders.append(f"{path.relative_to(REPO)}: {match.group(0)}")
    assert not offenders, offenders


def test_models_load_from_safetensors_only() -> None:
    """Every model load asks for safetensors; nothing unpickles (torch.load, pickle, joblib)."""
    problems = []
    loads = 0
    for path in _product_sources():
        source = path.read_text(encoding="utf-8")
        for match in re.finditer(r"AutoModel\w*\.from_pretrained\(", source):
            loads += 1
            if "use_safetensors=True" not in _call_arguments(source, match.end()):
                problems.append(f"{path.relative_to(REPO)}: from_pretrained without use_safetensors=True")
        for unsafe in ("torch.load(", "pickle.load", "joblib.load", "dill.load"):
            if unsafe in source:
                problems.append(f"{path.relative_to(REPO)}: {unsafe}")
    assert loads, "no model load found: the pattern no longer matches how models are loaded"
    assert not problems, problems
