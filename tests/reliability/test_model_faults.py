"""The model process fails under a running worker: faults of the infrastructure never cost a ticket.

A model that cannot come back (killed, checkpoint folder gone) pauses the worker with ``/health`` 503 and a
reason until it can; a hung model (SIGSTOP) is killed at its call deadline and restarted. Either way every
valid ticket is triaged once the model is back, none is dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

from loadtest.replay import ReplayConfig
from tests.reliability.conftest import Rig
from tests.reliability.summary import report
from tests.reliability.traffic import Traffic
from tests.workers import WorkerProcess


def _config(count: int, seed: int) -> ReplayConfig:
    return ReplayConfig(count=count, rate=40, malformed_ratio=0.08, duplicate_ratio=0.15, seed=seed)


def _health(worker: WorkerProcess) -> tuple[int, dict[str, object]]:
    status, body = worker.get("/health")
    return status, json.loads(body) if body else {}


async def _watch_health(worker: WorkerProcess, seen: list[tuple[int, object]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        status, body = await asyncio.to_thread(_health, worker)
        seen.append((status, body.get("reason")))
        await asyncio.sleep(0.2)


def test_model_that_cannot_come_back_pauses_the_worker_and_dead_letters_nothing(rig: Rig) -> None:
    worker = rig.worker("model_down")
    hidden = rig.model_root / "hidden"

    async def scenario() -> tuple[Traffic, list[tuple[int, object]], int]:
        await rig.start(worker)
        seen: list[tuple[int, object]] = []
        stop = asyncio.Event()
        async with rig.traffic("model_down") as t:
            t.send(_config(300, 11))
            await t.until("the first 60 messages", lambda: t.resolved >= 60, 60)
            watcher = asyncio.create_task(_watch_health(worker, seen, stop))
            (rig.model_root / "v1").rename(hidden)
            os.kill(worker.model_pid(), signal.SIGKILL)
            at_fault = t.resolved
            await asyncio.sleep(8)
            during = t.resolved - at_fault
            hidden.rename(rig.model_root / "v1")
            await t.settle(120)
            stop.set()
            await watcher
        return t, seen, during

    traffic, seen, during = asyncio.run(scenario())
    outcome = traffic.outcome(rig.reference)
    down = [reason for status, reason in seen if status == 503]
    outcome.extra.update(
        health_503_polls=len(down), health_200_after=seen[-1][0] == 200, resolved_while_down=during
    )
    report(outcome)
    outcome.assert_clean()
    assert down and all("model" in str(reason) for reason in down), f"/health during the outage: {seen[:5]}"
    assert seen[-1][0] == 200, f"/health once the model is back: {seen[-3:]}"
    assert "model_restart_failed" in worker.output()


def test_hung_model_is_killed_at_its_deadline_and_restarted(rig: Rig) -> None:
    worker = rig.worker("hung_model", model_call_timeout_s="3")

    async def scenario() -> tuple[Traffic, list[tuple[int, object]], float]:
        await rig.start(worker)
        seen: list[tuple[int, object]] = []
        stop = asyncio.Event()
        async with rig.traffic("hung_model") as t:
            t.send(_config(300, 12))
            await t.until("the first 60 messages", lambda: t.resolved >= 60, 60)
            watcher = asyncio.create_task(_watch_health(worker, seen, stop))
            os.kill(worker.model_pid(), signal.SIGSTOP)
            took = await t.settle(120)
            stop.set()
            await watcher
        return t, seen, took

    traffic, seen, took = asyncio.run(scenario())
    outcome = traffic.outcome(rig.reference)
    restarts = worker.metric("triage_model_restarts_total", reason="timeout")
    down = sum(1 for status, _ in seen if status == 503)
    outcome.extra.update(restarts=int(restarts), health_503_polls=down, settle_s=round(took, 1))
    report(outcome)
    outcome.assert_clean()
    assert restarts >= 1, "the stopped model was killed at its deadline"
    assert any(status == 503 for status, _ in seen), "/health said the model was restarting"
