"""Worker test kit: real ``python -m worker`` processes on the session broker, real Redis, aiokafka readers."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from triage.broker import EmbeddedBroker, free_port
from worker.settings import TopicSettings

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 3


def topic_settings(token: str) -> TopicSettings:
    """Topic names private to one test (or one module), so tests share the broker without crosstalk."""
    return TopicSettings.namespaced(f"t-{token}", partitions=PARTITIONS)


def worker_env(
    broker: EmbeddedBroker,
    redis_url: str,
    state_dir: Path,
    topics: TopicSettings,
    model_dir: Path,
    token: str,
    **overrides: str,
) -> dict[str, str]:
    """Environment of one worker process: everything through ``TRIAGE_*`` like in production."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update(
        {
            "TRIAGE_BROKERS": broker.bootstrap,
            "TRIAGE_GROUP_ID": f"triage-{token}",
            "TRIAGE_TOPICS__INCOMING": topics.incoming,
            "TRIAGE_TOPICS__ENRICHED": topics.enriched,
            "TRIAGE_TOPICS__ROUTE_PREFIX": topics.route_prefix,
            "TRIAGE_TOPICS__ONCALL": topics.oncall,
            "TRIAGE_TOPICS__REVIEW": topics.review,
            "TRIAGE_TOPICS__DEADLETTER": topics.deadletter,
            "TRIAGE_TOPICS__PARTITIONS": str(topics.partitions),
            "TRIAGE_MODEL_DIR": str(model_dir),
            "TRIAGE_REDIS__URL": redis_url,
            "TRIAGE_REDIS__KEY_PREFIX": f"test-{token}",
            "TRIAGE_REDIS__TIMEOUT_MS": "2000",
            "TRIAGE_WEB_PORT": str(free_port()),
            "TRIAGE_WEB_HOST": "127.0.0.1",
            "TRIAGE_STATE_DIR": str(state_dir),
            "TRIAGE_SESSION_TIMEOUT_S": "6",
            "TRIAGE_TORCH_THREADS": "1",
            "TRIAGE_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class WorkerProcess:
    """One worker subprocess with its log file; kill/terminate are real signals."""

    def __init__(self, env: dict[str, str], log_path: Path, command: Sequence[str] | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.command = list(command or [sys.executable, "-m", "worker"])
        self.port = int(env["TRIAGE_WEB_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def fail(self, why: str) -> None:
        tail = "\n".join(self.log_text().splitlines()[-40:])
        pytest.fail(f"{why}\n--- worker log tail ({self.log_path}) ---\n{tail}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_healthy(self, timeout: float = 120.0) -> dict[str, object]:
        """Until /health says ready (model loaded, Kafka reachable)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"worker exited with {self.proc.returncode} before becoming healthy")
            try:
                status, body = self.get("/health")
            except OSError:
                status, body = 0, ""
            if status == 200:
                return dict(json.loads(body))
            time.sleep(0.25)
        self.fail(f"worker not healthy within {timeout}s")
        raise AssertionError("unreachable")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels`` (0 when absent)."""
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not match:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self.fail(f"worker did not exit within {timeout}s")
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass(frozen=True)
class Ticketed:
    """A consumed output record with its value parsed."""

    topic: str
    key: bytes | None
    value: dict[str, object]
    headers: dict[str, bytes]
    raw: bytes
    partition: int = 0


def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    """Send messages in order (one partition per key), waiting for the broker's acks."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 * 1024 * 1024, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key) for key, value in messages]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def read_topics(
    bootstrap: str,
    topics: Sequence[str],
    until: Callable[[list[Ticketed]], bool],
    timeout: float = 60.0,
) -> list[Ticketed]:
    """Everything on ``topics`` from the beginning, read until ``until(records)`` holds or the timeout."""

    async def run() -> list[Ticketed]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        out: list[Ticketed] = []
        try:
            tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + timeout
            while not until(out) and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    out.extend(_parse(r) for r in records)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def _parse(record: ConsumerRecord) -> Ticketed:
    raw = record.value or b""
    return Ticketed(record.topic, record.key, json.loads(raw), dict(record.headers), raw, record.partition)


def keys_seen(records: Sequence[Ticketed], topic: str | None = None) -> set[bytes]:
    return {r.key for r in records if r.key is not None and (topic is None or r.topic == topic)}


def ticket(ticket_id: str, text: str, **extra: object) -> tuple[bytes, bytes]:
    return ticket_id.encode(), json.dumps({"ticket_id": ticket_id, "text": text, **extra}).encode()


def banking_texts(data_dir: Path, per_intent: int) -> list[tuple[str, str]]:
    """(intent, text) pairs, ``per_intent`` for each Banking77 intent, from the training split."""
    chosen: dict[str, list[str]] = {}
    with (data_dir / "train.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            texts = chosen.setdefault(row["category"], [])
            if len(texts) < per_intent:
                texts.append(row["text"])
    return [(intent, text) for intent, texts in sorted(chosen.items()) for text in texts]


def drop_keys(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


def new_token() -> str:
    return uuid.uuid4().hex[:8]
