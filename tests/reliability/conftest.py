"""Fixtures of the fault-injection suite: private brokers, worker processes, replay source, reference model.

Every test in this folder is marked ``reliability`` (``pytest -m reliability`` runs them alone). Each
scenario prints one summary line; they are repeated at the end of the run under "reliability scenarios".
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import redis

from inference.environment import flatten_env
from loadtest.broker import EmbeddedBroker
from loadtest.source import SourceRecord, load_source
from schemas import Triage
from tests.reliability.summary import SUMMARIES
from tests.reliability.traffic import Reference, Stage, Traffic
from tests.workers import WorkerProcess

_HERE = Path(__file__).resolve().parent
BACKEND: Final = "onnx"
"""The serving path of the model workers these scenarios start, and of the reference they are checked against.

Pinned on both sides, because each enriched record's triage must equal the reference's: ``auto`` may pick the
int8 export on one side and not the other, and int8 scales activations per batch, so a text's probabilities move
with its batch-mates. The fp32 export gives the same answer in any batch, and its model process imports no torch.
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(autouse=True)
def _scenario_lines(request: pytest.FixtureRequest) -> Iterator[None]:
    """The test's summary lines ride on its report, so the end-of-run section gets them from xdist workers."""
    yield
    while SUMMARIES:
        request.node.user_properties.append(("scenario", SUMMARIES.pop(0)))


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own: faults and consumer groups never leak into other tests."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


@pytest.fixture
def stage(unique: Callable[[str], str]) -> Stage:
    return Stage(unique("rel"))


@pytest.fixture
def key_prefix(unique: Callable[[str], str], redis_url: str) -> Iterator[str]:
    """A Redis key prefix of the test's own, emptied afterwards."""
    prefix = unique("reltest")
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(scope="session")
def source_records(data_dir: Path) -> list[SourceRecord]:
    """Banking77's test split, the replay tool's default source (each record carries its ground truth)."""
    return load_source("test", data_dir)


@pytest.fixture(scope="session")
def reference(tiny_checkpoint: Path) -> Callable[[list[str]], list[Triage]]:
    """The checkpoint the workers serve, on the same ``BACKEND``, run in this process: what each record must say.

    One thread (many threads on shared cores are several times slower), results memoised per text.
    """
    from inference.classifier import Classifier

    classifier = Classifier.load(tiny_checkpoint, backend=BACKEND, threads=1)
    known: dict[str, Triage] = {}

    def predict(texts: list[str]) -> list[Triage]:
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            known.update(zip(todo, classifier.predict(todo), strict=True))
        return [known[t] for t in texts]

    return predict


@pytest.fixture
def model_root(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private checkpoint root (``v1`` + ``latest``) a test may publish new versions into."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(tiny_checkpoint.resolve(), root / "v1")
    (root / "latest").symlink_to("v1")
    return root


@pytest.fixture
def spawn(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of worker processes for a stage; every one still running at the end is stopped."""
    started: list[WorkerProcess] = []

    def make(name: str, brokers: str, stage: Stage, model_dir: Path | None, **env: str) -> WorkerProcess:
        settings = {
            "TRIAGE_BROKERS": brokers,
            **stage.worker_env(),
            "TRIAGE_MODEL_BACKEND": BACKEND if model_dir is not None else "noop",
            "TRIAGE_MODEL_DIR": str(model_dir or tmp_path / "no-model"),
            "TRIAGE_REDIS__URL": redis_url,
            "TRIAGE_REDIS__KEY_PREFIX": key_prefix,
            # A busy CI machine answers the shared Redis slower than the 100 ms default now and then; the cache
            # would then rest 5 s and redeliveries would no longer be byte-identical, which is not the fault
            # these scenarios inject (the Redis outage scenario cuts the link: its errors are immediate).
            "TRIAGE_REDIS__TIMEOUT_MS": "1000",
            **flatten_env(env),
        }
        worker = WorkerProcess(name, settings, tmp_path / f"{name}.log")
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()


@dataclass(frozen=True)
class Rig:
    """One scenario's private broker and topics, its checkpoint, the traffic source and the reference model."""

    broker: EmbeddedBroker
    stage: Stage
    spawn: Callable[..., WorkerProcess]
    model_root: Path
    records: list[SourceRecord]
    reference: Reference

    def worker(self, name: str, **env: str) -> WorkerProcess:
        """A worker process (not started) serving ``model_root/latest`` on this stage."""
        return self.spawn(name, self.broker.bootstrap, self.stage, self.model_root / "latest", **env)

    async def start(self, *workers: WorkerProcess) -> None:
        """Create the stage's topics, then launch the workers."""
        await self.stage.create_topics(self.broker.bootstrap)
        await self.launch(*workers)

    async def launch(self, *workers: WorkerProcess) -> None:
        """Start (or restart) the workers and wait until every one is ready."""
        for worker in workers:
            worker.start()
        await asyncio.gather(*(asyncio.to_thread(worker.wait_ready) for worker in workers))

    def traffic(self, name: str) -> Traffic:
        return Traffic(name, self.broker.bootstrap, self.stage, self.records)


@pytest.fixture
def rig(
    private_broker: EmbeddedBroker,
    stage: Stage,
    spawn: Callable[..., WorkerProcess],
    model_root: Path,
    source_records: list[SourceRecord],
    reference: Reference,
) -> Rig:
    return Rig(private_broker, stage, spawn, model_root, source_records, reference)
