"""Session fixtures shared by every test folder: the real broker, the real Redis, a tiny checkpoint.

Also the two test tiers: a test whose fixtures reach a broker, Redis or a trained checkpoint is marked
``integration``; every other test runs with none of them (``make test-unit`` = ``pytest -m "not integration"``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from loadtest.broker import EmbeddedBroker
from tests.names import unique_name

REDIS_URL = os.environ.get("TRIAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
INTEGRATION_FIXTURES = frozenset({"broker", "private_broker", "redis_url", "tiny_checkpoint"})
"""Fixtures that start a broker, reach the real Redis or train the tiny checkpoint.

Every fixture that needs one of these requests it (``spawn``, ``key_prefix``, ``model_root``, ``checkpoint_copy``
...), so a test's fixture closure names it whatever the test asks for directly.
"""


def shared_data_dir() -> Path:
    """Banking77 folder for tests: TRIAGE_DATA_DIR, else ../shared/data/banking77 beside the checkout."""
    env = os.environ.get("TRIAGE_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77")
    for candidate in candidates:
        if (candidate / "train.csv").is_file():
            return candidate
    raise RuntimeError(
        f"Banking77 not found (tried {', '.join(map(str, candidates))}); set TRIAGE_DATA_DIR to a folder "
        "with train.csv and test.csv"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test whose fixture closure includes one of ``INTEGRATION_FIXTURES``.

    Derived from the fixtures rather than marked by hand, so a new test lands in the right tier by itself.
    """
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Scenario lines tests attached to their reports (``user_properties``), from every xdist worker too."""
    lines = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "teardown"
        for name, value in getattr(report, "user_properties", ())
        if name == "scenario"
    ]
    if lines:
        terminalreporter.section("reliability scenarios")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Tansu broker for the session; fails loudly (never skips) when it cannot start."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis the machine runs; fails loudly when it is not there."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RuntimeError(f"Redis is required at {REDIS_URL} for the tests: {exc}") from exc
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def unique() -> Callable[[str], str]:
    """Factory of names no other test uses (topics, consumer groups, Redis key prefixes): ``unique_name``.

    Session-scoped so module-scoped fixtures can take it too; every call gives a new name.
    """
    return unique_name


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A small real checkpoint trained once per run (few minutes on 2 cores), via ``latest``.

    Under pytest-xdist the workers share one: the first to ask trains it in the run's common temp folder
    while the others wait on a file lock.
    """
    from filelock import FileLock

    from trainer.config import TrainArgs
    from trainer.train import run_training

    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        root = tmp_path_factory.mktemp("models")
    else:
        root = tmp_path_factory.getbasetemp().parent / "shared-models"
    with FileLock(f"{root}.lock"):
        if not (root / "latest").exists():
            run_training(TrainArgs(preset="tiny", data_dir=data_dir, output=root))
    return root / "latest"
