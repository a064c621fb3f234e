"""Memory is bounded by bytes: with the model stopped, the worker holds at most ``max_inflight_bytes`` of tickets."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from loadtest.broker import EmbeddedBroker
from tests.worker.kit import keys_seen, produce, read_topics, ticket, topic_settings, worker_env
from tests.workers import WorkerProcess

MIB = 1024 * 1024
TICKETS = 80


def test_the_worker_stops_fetching_when_its_tickets_fill_max_inflight_bytes(
    broker: EmbeddedBroker, redis_url: str, tiny_checkpoint: Path, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """80 tickets of 256 KiB (20 MiB) behind a stopped model: 4,096 such messages would be 1 GiB."""
    name = unique("inflight")
    topics = topic_settings(name)
    env = worker_env(
        broker, redis_url, tmp_path / "state", topics, tiny_checkpoint, name,
        TRIAGE_MAX_INFLIGHT_BYTES=str(2 * MIB), TRIAGE_MODEL_CALL_TIMEOUT_S="600", TRIAGE_BATCH_SIZE="4",
    )
    worker = WorkerProcess("worker", env, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        pid = worker.model_pid()
        os.kill(pid, signal.SIGSTOP)
        blob = os.urandom(128 * 1024).hex()
        messages = [ticket(f"big-{i}", f"my card {i} was declined", metadata={"blob": blob}) for i in range(TICKETS)]
        produce(broker.bootstrap, topics.incoming, messages)
        time.sleep(6)
        held = worker.metric("triage_inflight_bytes")
        taken = worker.metric("triage_tickets_in_total")
        os.kill(pid, signal.SIGCONT)
        wanted = {key for key, _ in messages}
        out = read_topics(broker.bootstrap, [topics.enriched], until=lambda o: wanted <= keys_seen(o), timeout=120)
        assert wanted <= keys_seen(out)
        # the limit, plus what the fetches under way when it was reached bring: 1 MiB per partition each, but a
        # broker returns whole record batches, so one may pass it (6.3 MiB was seen on a loaded machine)
        assert 0 < held <= 2 * MIB + 2 * 3 * MIB, f"{held / MIB:.1f} MiB held"
        assert taken < TICKETS, f"{taken} of {TICKETS} tickets taken while the model was stopped"
        assert json.loads(worker.get("/health")[1])["status"] == "ready"
    finally:
        worker.stop()
