"""The worker process dies or is stopped mid-stream: nothing is lost, replays are identical records."""

from __future__ import annotations

import asyncio
import json
import time

from loadtest.replay import ReplayConfig
from tests.reliability.conftest import Rig
from tests.reliability.summary import report
from tests.reliability.traffic import Traffic
from tests.workers import WorkerProcess, metric_sum

GRACE_S = 10.0  # the worker must stop within it even with a backlog: it owes only its in-flight batches


def _config(count: int, rate: float | None, seed: int) -> ReplayConfig:
    """Valid tickets with repeated texts (cache hits) and ~8 % malformed messages (dead letters)."""
    return ReplayConfig(count=count, rate=rate, malformed_ratio=0.08, duplicate_ratio=0.15, seed=seed)


def test_sigkill_mid_batch_then_restart_loses_nothing(rig: Rig) -> None:
    worker = rig.worker("sigkill")

    async def scenario() -> tuple[Traffic, int]:
        await rig.start(worker)
        async with rig.traffic("sigkill") as t:
            t.send(_config(400, 100, 1))
            await t.until("the first 120 messages", lambda: t.resolved >= 120, 60)
            worker.kill()
            resolved_at_kill = t.resolved
            await rig.launch(worker)
            await t.settle(90)
        return t, resolved_at_kill

    traffic, resolved_at_kill = asyncio.run(scenario())
    outcome = traffic.outcome(rig.reference)
    outcome.extra["resolved_at_kill"] = resolved_at_kill
    report(outcome)
    assert resolved_at_kill < traffic.sent, "the kill must land while tickets are still flowing"
    outcome.assert_clean()


def test_sigterm_under_backlog_finishes_in_flight_work_within_the_grace_period(rig: Rig) -> None:
    first = rig.worker("sigterm", shutdown_grace_s=str(GRACE_S))
    second = rig.worker("sigterm-next")

    async def scenario() -> tuple[Traffic, float, int, int, int]:
        await rig.start(first)
        async with rig.traffic("sigterm") as t:
            t.send(_config(600, None, 2))
            await t.until("the first 100 messages", lambda: t.resolved >= 100, 60)
            at_term = t.resolved
            signalled = time.monotonic()
            first.terminate()
            code = await asyncio.to_thread(first.wait, GRACE_S + 30)
            took = time.monotonic() - signalled
            drained = t.resolved - at_term
            await rig.launch(second)
            await t.settle(90)
        return t, took, code, at_term, drained

    traffic, took, code, at_term, drained = asyncio.run(scenario())
    outcome = traffic.outcome(rig.reference)
    outcome.extra.update(resolved_at_term=at_term, drained=drained, exit_s=round(took, 2), exit_code=code)
    report(outcome)
    outcome.assert_clean()
    assert code == 0, f"SIGTERM should end the worker cleanly, got exit code {code}:\n{first.tail()}"
    assert took <= GRACE_S, (
        f"the worker took {took:.1f}s to stop (it finished {drained} tickets after SIGTERM), "
        f"more than its {GRACE_S}s grace period"
    )
    assert outcome.counts.duplicates == 0, "a graceful stop commits what it published: nothing is replayed"


def test_two_workers_one_killed_survivor_takes_over(rig: Rig) -> None:
    survivor = rig.worker("survivor")
    victim = rig.worker("victim")

    def consumed(worker: WorkerProcess) -> float:
        return metric_sum(worker.metrics(), "triage_tickets_in_total")

    async def scenario() -> tuple[Traffic, float, float, int]:
        await rig.start(survivor, victim)
        async with rig.traffic("two_workers") as t:
            t.send(_config(500, 60, 3))
            await t.until(
                "both workers to consume",
                lambda: consumed(survivor) > 0 and consumed(victim) > 0 and t.resolved >= 100,
                60,
            )
            victim.kill()
            before, sent_at_kill = consumed(survivor), t.sent
            await t.settle(120)
            after = consumed(survivor)
        return t, before, after, sent_at_kill

    traffic, before, after, sent_at_kill = asyncio.run(scenario())
    outcome = traffic.outcome(rig.reference)
    outcome.extra.update(survivor_before_kill=int(before), survivor_after=int(after), sent_at_kill=sent_at_kill)
    report(outcome)
    assert survivor.running, f"the survivor died:\n{survivor.tail()}"
    assert sent_at_kill < traffic.sent, "the kill must land while tickets are still being sent"
    assert after - before >= traffic.sent - sent_at_kill, "the survivor consumed every ticket sent after the kill"
    outcome.assert_clean()


def test_a_rebalance_mid_stream_keeps_each_partitions_outputs_in_order(rig: Rig) -> None:
    """A second worker joins mid-stream: the first finishes and commits its in-flight batches before its
    partitions move, so the newcomer starts exactly where it stopped: no record is published twice, and each
    output partition holds its tickets in the order they were sent."""
    first = rig.worker("first")
    joiner = rig.worker("joiner")

    async def scenario() -> tuple[Traffic, float]:
        await rig.start(first)
        async with rig.traffic("rebalance") as t:
            t.send(_config(500, 60, 13))
            await t.until("the first 100 messages", lambda: t.resolved >= 100, 60)
            await rig.launch(joiner)
            # The joiner may take longer to load than the first stream lasts on a busy machine: a second
            # stream after it is up gives it partitions with work to take over.
            t.send(_config(200, 60, 14))
            await t.settle(120)
        return t, metric_sum(joiner.metrics(), "triage_tickets_in_total")

    traffic, joined = asyncio.run(scenario())
    outcome = traffic.outcome(rig.reference)
    order = {entry.ticket_id: index for index, entry in enumerate(traffic.ledger.entries)}
    descents = 0
    for partition in range(rig.stage.partitions):
        sent = [
            order.get(json.loads(r.value)["ticket_id"], -1)
            for r in traffic.tap.records
            if r.topic == rig.stage.topics.enriched and r.partition == partition
        ]
        descents += sum(1 for a, b in zip(sent, sent[1:], strict=False) if b < a)
    outcome.extra.update(joiner_consumed=int(joined), out_of_order=descents)
    report(outcome)
    outcome.assert_clean()
    assert joined > 0, "the second worker took partitions over"
    assert descents == 0 and outcome.counts.duplicates == 0, "the old owner published after its partitions moved"
