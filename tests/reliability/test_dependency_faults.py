"""Redis and the broker fail under the running worker: it keeps triaging, reconnects, and loses nothing.

These scenarios test plumbing, not the model, so the workers run the no-op backend (a constant triage),
which starts in a few seconds. What the memory-only embedded broker cannot show is said in each test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from loadtest.broker import EmbeddedBroker, free_port
from loadtest.replay import ReplayConfig
from loadtest.source import SourceRecord
from tests.reliability.brokers import PartitionedBroker
from tests.reliability.proxy import FaultProxy
from tests.reliability.summary import report
from tests.reliability.traffic import Stage, Traffic
from tests.workers import WorkerProcess, metric_sum

GRACE_S = 5.0
EXIT_MARGIN_S = 1.0  # the grace watchdog ends the process with os._exit, at once


def _config(count: int, rate: float | None, seed: int, duplicates: float = 0.15) -> ReplayConfig:
    return ReplayConfig(count=count, rate=rate, malformed_ratio=0.08, duplicate_ratio=duplicates, seed=seed)


def _cached(traffic: Traffic, run_id: str) -> int:
    """Enriched tickets of one replay that the worker answered from Redis."""
    return sum(
        1
        for e in traffic.ledger.entries
        if e.ticket_id.startswith(run_id) and e.triage is not None and e.triage.cached
    )


def test_redis_outage_worker_keeps_triaging_and_cache_resumes(
    private_broker: EmbeddedBroker,
    stage: Stage,
    spawn: Callable[..., WorkerProcess],
    redis_url: str,
    source_records: list[SourceRecord],
) -> None:
    upstream = urlsplit(redis_url)
    with FaultProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379) as proxy:
        worker = spawn(
            "redis",
            private_broker.bootstrap,
            stage,
            None,
            redis__url=f"redis://{proxy.address}{upstream.path}",
            redis__retry_interval_s="0.5",
            # Long enough that a loaded CI machine does not time a healthy Redis out after the outage; a cut
            # connection fails at once (reset), a refused one within this.
            redis__timeout_ms="1000",
        )

        async def scenario() -> tuple[Traffic, str, int]:
            await stage.create_topics(private_broker.bootstrap)
            worker.start()
            await asyncio.to_thread(worker.wait_ready)
            async with Traffic("redis_outage", private_broker.bootstrap, stage, source_records) as t:
                t.send(_config(300, 60, 4, duplicates=0.3))
                await t.until("the first 60 messages", lambda: t.resolved >= 60, 60)
                proxy.cut()
                at_cut = t.resolved
                await t.until(
                    "80 messages triaged while Redis is down", lambda: t.resolved >= at_cut + 80, 60
                )
                during = t.resolved - at_cut
                proxy.restore()
                await t.settle(60)
                again = t.send(ReplayConfig(count=100, rate=None, seed=4))
                await t.settle(60)
            return t, again, during

        traffic, again, during = asyncio.run(scenario())
        metrics = worker.metrics()
        outcome = traffic.outcome()
        outcome.extra["during_outage"] = during
        outcome.extra["cache_errors"] = int(metric_sum(metrics, "triage_cache_errors_total"))
        outcome.extra["cached_after"] = _cached(traffic, again)
        outcome.extra["connections_reset"] = proxy.resets
        report(outcome)
        outcome.assert_clean()
        assert proxy.resets > 0, "the outage never cut a live Redis connection"
        assert metric_sum(metrics, "triage_cache_errors_total") > 0, "the outage was never noticed"
        assert "cache_unavailable" in worker.output() and "cache_recovered" in worker.output()
        assert metric_sum(metrics, "triage_cache_available") == 1.0, "the cache did not come back"
        assert _cached(traffic, again) > 0, "texts seen before the outage are answered from Redis again"


def test_broker_partition_producer_retries_and_worker_reconnects(
    tmp_path: Path,
    stage: Stage,
    spawn: Callable[..., WorkerProcess],
    source_records: list[SourceRecord],
) -> None:
    """Every connection to a running broker is cut for 5 s (bootstrap and advertised listener alike).

    The broker keeps its log and the group's offsets, so this is the fault a memory-only broker can show
    faithfully: a network partition or a broker that is unreachable for a while. At the end the broker is
    cut again for good and the worker is sent SIGTERM: it must still exit within its grace period.
    """
    with PartitionedBroker(tmp_path / "tansu-partitioned.log") as broker:
        worker = spawn("partition", broker.bootstrap, stage, None, shutdown_grace_s=str(GRACE_S))

        async def scenario() -> Traffic:
            await stage.create_topics(broker.bootstrap)
            worker.start()
            await asyncio.to_thread(worker.wait_ready)
            async with Traffic("broker_partition", broker.bootstrap, stage, source_records) as t:
                t.send(_config(300, 40, 5))
                await t.until("the first 60 messages", lambda: t.resolved >= 60, 60)
                broker.cut()
                await asyncio.sleep(5)
                broker.restore()
                await t.settle(120)
            return t

        traffic = asyncio.run(scenario())
        alive_throughout = worker.running and worker.starts == 1
        broker.cut()
        signalled = time.monotonic()
        worker.terminate()
        code = worker.wait(GRACE_S + 30)
        took = time.monotonic() - signalled
        outcome = traffic.outcome()
        outcome.extra.update(
            connections_reset=broker.proxy.resets,
            exit_s_broker_gone=round(took, 2),
            exit_code_broker_gone=code,
        )
        report(outcome)
        assert broker.proxy.resets > 0, "the partition never cut a live connection"
        assert alive_throughout, f"the worker did not ride out the partition:\n{worker.tail()}"
        outcome.assert_clean()
        assert took <= GRACE_S + EXIT_MARGIN_S, (
            f"with the broker gone, SIGTERM took {took:.1f}s (exit code {code}), grace {GRACE_S}s"
        )


def test_broker_restart_worker_recovers_on_its_own(
    tmp_path: Path,
    stage: Stage,
    spawn: Callable[..., WorkerProcess],
    source_records: list[SourceRecord],
) -> None:
    """The broker process is stopped and started again on the same port while the worker runs.

    A memory-only broker forgets every topic, record and committed offset when it stops; so this test
    claims only what survives that: the worker reconnects by itself and every ticket produced after the
    restart is triaged. That records in flight and committed offsets survive a restart is the job of a
    durable broker: it is covered by the Apache Kafka of ``deploy/docker-compose.yml``.
    """
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu-restarted.log").start()
    worker = spawn("restart", broker.bootstrap, stage, None)

    async def scenario() -> tuple[Traffic, Traffic]:
        await stage.create_topics(broker.bootstrap)
        worker.start()
        await asyncio.to_thread(worker.wait_ready)
        async with Traffic("broker_restart_before", broker.bootstrap, stage, source_records) as t:
            t.send(_config(100, 50, 6))
            await t.settle(60)
        broker.stop()
        await asyncio.sleep(1)
        broker.start()
        await stage.create_topics(broker.bootstrap)
        async with Traffic("broker_restart", broker.bootstrap, stage, source_records) as t2:
            t2.send(_config(200, 50, 7))
            await t2.settle(120)
        return t, t2

    try:
        before, after = asyncio.run(scenario())
        alive_throughout = worker.running and worker.starts == 1
        worker.stop()
    finally:
        broker.stop()
    before.outcome().assert_clean()
    outcome = after.outcome()
    report(outcome)
    assert alive_throughout, f"the worker must recover without a restart:\n{worker.tail()}"
    outcome.assert_clean()
