"""Redis down, slow, then back: the worker keeps triaging uncached, warns, and reconnects by itself."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from loadtest.broker import EmbeddedBroker, free_port
from tests.worker.kit import (
    keys_seen,
    produce,
    read_topics,
    ticket,
    topic_settings,
    worker_env,
)
from tests.workers import WorkerProcess


class RedisServer:
    """A private, throwaway Redis (the shared one must not be stopped or slowed)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--enable-debug-command", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.1)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_port() -> Iterator[int]:
    yield free_port()


def triage_of(bootstrap: str, topic: str, key: bytes) -> dict[str, object]:
    out = read_topics(bootstrap, [topic], until=lambda o: key in keys_seen(o))
    found = [r.value["triage"] for r in out if r.key == key]
    assert found, f"{key!r} was not triaged"
    return found[0]  # type: ignore[return-value]


def test_worker_survives_redis_down_and_slow_and_reconnects(
    broker: EmbeddedBroker, tiny_checkpoint: Path, tmp_path: Path, redis_port: int, unique: Callable[[str], str]
) -> None:
    name = unique("redis-down")
    topics = topic_settings(name)
    env = worker_env(
        broker, f"redis://127.0.0.1:{redis_port}/0", tmp_path / "state", topics, tiny_checkpoint, name,
        TRIAGE_REDIS__TIMEOUT_MS="200", TRIAGE_REDIS__RETRY_INTERVAL_S="0.5",
    )
    worker = WorkerProcess("worker", env, tmp_path / "worker.log").start()
    server = RedisServer(redis_port)
    try:
        assert worker.wait_ready()["cache_available"] is False
        produce(
            broker.bootstrap, topics.incoming, [ticket("down-1", "card declined"), ticket("down-2", "card declined")]
        )
        assert triage_of(broker.bootstrap, topics.enriched, b"down-2")["cached"] is False
        assert worker.metric("triage_cache_available") == 0
        assert worker.metric("triage_cache_errors_total") >= 1
        assert '"cache_unavailable"' in worker.output()

        server.start()
        time.sleep(1.0)
        produce(broker.bootstrap, topics.incoming, [ticket("up-1", "refund not received")])
        triage_of(broker.bootstrap, topics.enriched, b"up-1")
        produce(broker.bootstrap, topics.incoming, [ticket("up-2", "refund not received")])
        assert triage_of(broker.bootstrap, topics.enriched, b"up-2")["cached"] is True
        assert worker.metric("triage_cache_available") == 1
        assert '"cache_recovered"' in worker.output()

        errors = worker.metric("triage_cache_errors_total")
        staller = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=30, retry=Retry(NoBackoff(), 0))
        sleeper = threading.Thread(target=lambda: staller.execute_command("DEBUG", "SLEEP", "6"), daemon=True)
        sleeper.start()
        time.sleep(0.2)
        produce(broker.bootstrap, topics.incoming, [ticket("slow-1", "app keeps crashing")])
        assert triage_of(broker.bootstrap, topics.enriched, b"slow-1")["cached"] is False
        assert sleeper.is_alive(), "triaged while Redis was still stalled"
        assert worker.metric("triage_cache_errors_total") > errors
        assert worker.get("/health")[0] == 200
        sleeper.join(10)
        assert not sleeper.is_alive()
        staller.close()
    finally:
        worker.stop()
        server.stop()


def test_memory_backend_caches_without_any_redis(
    broker: EmbeddedBroker, tiny_checkpoint: Path, tmp_path: Path, redis_port: int, unique: Callable[[str], str]
) -> None:
    name = unique("memory")
    topics = topic_settings(name)
    env = worker_env(
        broker, f"redis://127.0.0.1:{redis_port}/0", tmp_path / "state", topics, tiny_checkpoint, name,
        TRIAGE_REDIS__BACKEND="memory",
    )
    worker = WorkerProcess("worker", env, tmp_path / "worker.log").start()
    try:
        assert worker.wait_ready()["cache_available"] is True
        produce(broker.bootstrap, topics.incoming, [ticket("mem-1", "where is my new card")])
        assert triage_of(broker.bootstrap, topics.enriched, b"mem-1")["cached"] is False
        produce(broker.bootstrap, topics.incoming, [ticket("mem-2", "where is my new card")])
        assert triage_of(broker.bootstrap, topics.enriched, b"mem-2")["cached"] is True
        assert worker.metric("triage_cache_hits_total") >= 1
        assert worker.metric("triage_cache_errors_total") == 0
        assert '"cache_in_process"' in worker.output()
    finally:
        worker.stop()
