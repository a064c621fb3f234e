"""Hot reload: a new checkpoint behind ``latest`` is picked up between batches; a broken one is refused."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from inference.checkpoint import MANIFEST, publish, resolve_checkpoint
from loadtest.broker import EmbeddedBroker
from schemas.messages import EnrichedTicket
from tests.tiny_model import corrupt_weights
from tests.worker.kit import (
    drop_keys,
    keys_seen,
    produce,
    read_topics,
    ticket,
    topic_settings,
    worker_env,
)
from tests.workers import WorkerProcess
from worker.cache import TriageCache
from worker.metrics import WorkerMetrics
from worker.model import ModelClient
from worker.pipeline import TriagePipeline
from worker.records import InRecord
from worker.reload import ModelReloader
from worker.settings import RedisSettings, WorkerSettings


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def publish_version(source: Path, root: Path, version: str, *, corrupt: bool = False) -> None:
    """Publish a copy of ``source`` as ``root/version`` (manifest rewritten) and move ``latest`` to it."""
    staging = root / f".staging-{version}"
    shutil.copytree(resolve_checkpoint(source), staging, copy_function=_link_or_copy)
    manifest = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    manifest["version"] = version
    (staging / MANIFEST).unlink()
    (staging / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    if corrupt:  # every engine's weights: backend auto may serve the ONNX export instead of the safetensors
        corrupt_weights(staging)
    publish(staging, root, version)


@pytest.fixture
def models_root(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    publish_version(tiny_checkpoint, root, "v1")
    return root


def test_reloader_swaps_in_new_versions_and_keeps_serving_when_one_is_broken(models_root: Path) -> None:
    settings = WorkerSettings(model_dir=models_root / "latest", reload_interval_s=1, torch_threads=1)
    metrics = WorkerMetrics()
    client = ModelClient(settings, metrics)
    reloader = ModelReloader(settings, client, metrics)

    async def run() -> None:
        await reloader.load_initial()
        assert client.version == "v1" and not await reloader.check()
        publish_version(models_root / "v1", models_root, "v2")
        assert await reloader.check() and client.version == "v2"
        publish_version(models_root / "v1", models_root, "v3", corrupt=True)
        assert not await reloader.check() and client.version == "v2"
        assert not await reloader.check(), "a refused checkpoint is not retried until latest moves again"
        (answer,) = await client.predict(client.engine, ["my card is lost"])
        assert answer.model_version == "v2"

    try:
        asyncio.run(run())
    finally:
        client.close()
    assert metrics.model_reloads.labels(result="ok")._value.get() == 1
    assert metrics.model_reloads.labels(result="failed")._value.get() == 1


def test_a_swap_while_a_batch_waits_on_redis_leaves_the_batch_its_model(
    models_root: Path, redis_url: str, redis_client: redis.Redis, unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch took v1, then waits on its cache lookup; v2 is swapped in meanwhile. Forced, not hoped for:
    the lookup is held until the swap is done. Every ticket of the batch is still triaged, by v1."""
    prefix = unique("swap")
    settings = WorkerSettings(model_dir=models_root / "latest", reload_interval_s=1, torch_threads=1,
                              redis=RedisSettings(url=redis_url, key_prefix=prefix, timeout_ms=2000))
    metrics = WorkerMetrics()
    client = ModelClient(settings, metrics)
    reloader = ModelReloader(settings, client, metrics)
    cache = TriageCache(settings.redis, metrics)
    pipeline = TriagePipeline(settings, cache, client, metrics)
    texts = ["my card was stolen", "how do I top up by bank transfer?", "where is my new card"]
    records = [InRecord("tickets.incoming", 0, i, f"s{i}".encode(),
                        json.dumps({"ticket_id": f"s{i}", "text": text}).encode()) for i, text in enumerate(texts)]

    async def run() -> list[bytes]:
        await cache.connect()
        entered, swapped = asyncio.Event(), asyncio.Event()
        look_up = cache.get_many

        async def held(keys: list[str]) -> dict[str, bytes]:
            entered.set()
            await swapped.wait()
            return await look_up(keys)

        monkeypatch.setattr(cache, "get_many", held)
        await reloader.load_initial()
        batch = asyncio.create_task(pipeline.process(records))
        await entered.wait()
        publish_version(models_root / "v1", models_root, "v2")
        assert await reloader.check() and client.version == "v2"
        swapped.set()
        outcomes = await batch
        await cache.close()
        return [outcome.records[0].value for outcome in outcomes]

    try:
        values = asyncio.run(run())
    finally:
        client.close()
        drop_keys(redis_client, prefix)
    assert [EnrichedTicket.model_validate_json(v).triage.model_version for v in values] == ["v1"] * len(texts)
    assert metrics.dead_letters.labels(reason="processing_failed")._value.get() == 0


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_running_faust_worker_reloads_between_batches(
    broker: EmbeddedBroker, redis_url: str, models_root: Path, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Through ``faust -A worker.app worker``, the second way to start the worker."""
    name = unique("reload")
    topics = topic_settings(name)
    env = worker_env(
        broker, redis_url, tmp_path / "state", topics, models_root / "latest", name, TRIAGE_RELOAD_INTERVAL_S="0.5"
    )
    command = [str(Path(sys.executable).with_name("faust")), "-A", "worker.app", "worker", "-l", "info"]
    worker = WorkerProcess("worker", env, tmp_path / "worker.log", command).start()
    text = "I think someone stole my card details"
    try:
        assert worker.wait_ready()["model_version"] == "v1"
        produce(broker.bootstrap, topics.incoming, [ticket("r-1", text)])
        read_topics(broker.bootstrap, [topics.enriched], until=lambda o: b"r-1" in keys_seen(o))
        publish_version(models_root / "v1", models_root, "v2")
        wait_for(lambda: worker.metric("triage_model_info", version="v2") == 1)
        produce(broker.bootstrap, topics.incoming, [ticket("r-2", text)])
        read_topics(broker.bootstrap, [topics.enriched], until=lambda o: b"r-2" in keys_seen(o))
        publish_version(models_root / "v1", models_root, "v3", corrupt=True)
        wait_for(lambda: worker.metric("triage_model_reloads_total", result="failed") == 1)
        produce(broker.bootstrap, topics.incoming, [ticket("r-3", text)])
        out = read_topics(
            broker.bootstrap, [topics.enriched], until=lambda o: {b"r-1", b"r-2", b"r-3"} <= keys_seen(o)
        )
        triage = {r.key: r.value["triage"] for r in out}
        assert triage[b"r-1"]["model_version"] == "v1"  # type: ignore[index]
        assert triage[b"r-2"]["model_version"] == "v2" and triage[b"r-2"]["cached"] is False  # type: ignore[index]
        assert triage[b"r-3"]["model_version"] == "v2" and triage[b"r-3"]["cached"] is True  # type: ignore[index]
        assert worker.get("/health")[0] == 200
        assert worker.metric("triage_model_info", version="v1") == 0
        assert '"model_reload_failed"' in worker.output()
    finally:
        worker.stop()
