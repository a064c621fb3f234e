"""Checkpoints published while the worker runs: a bad one keeps the old model serving and says why; swaps under
a draining backlog cost no ticket."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from inference.checkpoint import MANIFEST, read_manifest
from loadtest.replay import ReplayConfig
from tests.reliability.conftest import Rig
from tests.reliability.summary import report
from tests.reliability.traffic import Traffic
from tests.tiny_model import corrupt_weights
from tests.workers import metric_sum

GOOD = "reloaded-good"
SWAPS = 3
"""Swaps of `latest` that must load while tickets are in flight."""


def _point_latest(root: Path, target: str) -> None:
    """Swap ``latest`` atomically, as ``inference.checkpoint.publish`` does (the target need not exist)."""
    link = root / ".latest-swap"
    link.unlink(missing_ok=True)
    os.symlink(target, link)
    os.replace(link, root / "latest")


def _variant(root: Path, name: str, change: Callable[[Path], None]) -> None:
    """A copy of ``v1`` with one change, pointed to by ``latest``."""
    folder = root / name
    shutil.copytree(root / "v1", folder)
    change(folder)
    _point_latest(root, name)


def _pickled_only(folder: Path) -> None:
    """Weights only as ``pytorch_model.bin`` (a pickle, which could run code when loaded)."""
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")


def _renamed(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "version": GOOD}))


def test_bad_checkpoint_at_hot_reload_keeps_the_old_model_serving(rig: Rig) -> None:
    worker = rig.worker("reload", reload_interval_s="0.5")
    served = str(read_manifest(rig.model_root / "v1")["version"])
    bad_versions: list[tuple[str, Callable[[], None]]] = [
        ("corrupt_weights", lambda: _variant(rig.model_root, "v2-corrupt", corrupt_weights)),
        ("missing_folder", lambda: _point_latest(rig.model_root, "v3-does-not-exist")),
        ("pickled_only", lambda: _variant(rig.model_root, "v4-pickled", _pickled_only)),
    ]

    def failed_reloads() -> float:
        return metric_sum(worker.metrics(), "triage_model_reloads_total", result="failed")

    def failed_reloads_reach(count: int) -> Callable[[], bool]:
        return lambda: failed_reloads() >= count

    async def scenario() -> tuple[Traffic, str]:
        await rig.start(worker)
        async with rig.traffic("hot_reload") as t:
            t.send(ReplayConfig(count=40, rate=None, malformed_ratio=0.1, seed=8))
            await t.settle(60, quiet_s=0)
            for number, (name, publish) in enumerate(bad_versions, start=1):
                publish()
                await t.until(f"the {name} reload to fail", failed_reloads_reach(number), 30)
                assert worker.get("/health")[0] == 200, f"not ready after the {name} reload failed"
                t.send(ReplayConfig(count=40, rate=None, malformed_ratio=0.1, seed=8 + number))
                await t.settle(60, quiet_s=0)
            _variant(rig.model_root, "v5-good", _renamed)
            await t.until(
                "the good checkpoint to load",
                lambda: metric_sum(worker.metrics(), "triage_model_reloads_total", result="ok") >= 1,
                60,
            )
            last = t.send(ReplayConfig(count=40, rate=None, malformed_ratio=0.1, seed=20))
            await t.settle(60)
        return t, last

    traffic, last = asyncio.run(scenario())
    outcome = traffic.outcome(
        rig.reference, version_of=lambda ticket_id: GOOD if ticket_id.startswith(last) else served
    )
    outcome.extra["failed_reloads"] = int(failed_reloads())
    report(outcome)
    outcome.assert_clean()
    logs = worker.output()
    assert logs.count('"model_reload_failed"') == len(bad_versions), "each bad checkpoint is reported once"
    assert "pickled weights" in logs, "the refusal of pickled weights says why"
    assert metric_sum(worker.metrics(), "triage_model_info", version=GOOD) == 1
    assert metric_sum(worker.metrics(), "triage_model_info", version=served) == 0


def test_latest_swapped_every_few_seconds_while_a_backlog_drains(rig: Rig) -> None:
    """A backlog drains while ``latest`` moves between two checkpoints every 2 s: every ticket is enriched, by one
    of the two, none dead-lettered, none lost (a swap lands between batches, never under one). A machine fast
    enough to drain the backlog before three swaps have loaded gets another wave, so the swaps meet traffic on any
    machine."""
    worker = rig.worker("swaps", reload_interval_s="0.5")
    served = str(read_manifest(rig.model_root / "v1")["version"])
    _variant(rig.model_root, "v2-renamed", _renamed)
    _point_latest(rig.model_root, "v1")

    def reloads() -> float:
        return metric_sum(worker.metrics(), "triage_model_reloads_total", result="ok")

    async def scenario() -> Traffic:
        await rig.start(worker)
        async with rig.traffic("swaps") as t:
            t.send(ReplayConfig(count=1500, rate=None, duplicate_ratio=0.1, seed=31))
            await t.until("the backlog to start draining", lambda: t.resolved >= 50, 60)
            target, deadline = "v2-renamed", time.monotonic() + 120
            while time.monotonic() < deadline:
                if t.replay_done and not t.ledger.pending:
                    if reloads() >= SWAPS:
                        break
                    t.send(ReplayConfig(count=1000, rate=None, duplicate_ratio=0.1, seed=31 + len(t.waves)))
                _point_latest(rig.model_root, target)
                target = "v1" if target == "v2-renamed" else "v2-renamed"
                await asyncio.sleep(2)
            await t.settle(60)
        return t

    traffic = asyncio.run(scenario())
    outcome = traffic.outcome(rig.reference, version_of=lambda _: frozenset({served, GOOD}))
    outcome.extra.update(swaps_loaded=int(reloads()))
    report(outcome)
    outcome.assert_clean()
    assert outcome.counts.dead_lettered == 0, "no valid ticket is dead-lettered"
    assert reloads() >= SWAPS, "latest was re-pointed while the backlog drained"
