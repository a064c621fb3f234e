"""Session fixtures shared by every test folder: the real broker, the real Redis, a tiny checkpoint.

Also the two test tiers: a test whose fixtures reach a broker, Redis or a trained checkpoint is marked
``integration``; every other test runs with none of them (``make test-unit`` = ``pytest -m "not integration"``).
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
import redis
from pytest_timeout import _get_item_settings

from loadtest.broker import EmbeddedBroker
from tests.names import unique_name
from tests.tiny_model import start_training, trained

_TRAINING: list[subprocess.Popen[bytes]] = []
"""The early tiny-checkpoint training this process started (``pytest_sessionstart``)."""

_RUNNING: list[pytest.Item] = []
"""The test being run (set up, called, torn down) in this process."""

SHARED_WAITS = frozenset({"tiny_checkpoint"})
"""Session fixtures that may wait minutes for work shared by the whole run: that wait is not one test's time."""

TINY_ROOT_ENV = "TRIAGE_TEST_TINY_ROOT"
"""A folder that keeps the tiny checkpoint between runs (a developer's loop); unset, each run trains its own."""

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
    """Mark ``integration`` every test whose fixture closure includes one of ``INTEGRATION_FIXTURES``; order the
    files that need no tiny checkpoint first, while it trains, then the others, each with the most tests first.

    Tiers are derived from the fixtures rather than marked by hand, so a new test lands in the right one by
    itself. pytest-xdist keeps this order with ``--no-loadscope-reorder`` (``make test``), where it would
    otherwise hand out the files with the most tests first, and those need the checkpoint.
    """
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    needs_model = {item.path for item in items if "tiny_checkpoint" in getattr(item, "fixturenames", ())}
    per_file = Counter(item.path for item in items)
    items.sort(key=lambda item: (item.path in needs_model, -per_file[item.path], item.path))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _RUNNING.append(item)
    try:
        return (yield)
    finally:
        _RUNNING.remove(item)


class SharedWaits:
    """pytest-timeout's clock stops while a ``SHARED_WAITS`` fixture is set up and starts afresh after it.

    The first test to need the tiny checkpoint may wait for its training far longer than any test takes on a
    busy machine; the fixture bounds that wait itself (``tests.tiny_model.TRAINING_WAIT_S``). A plugin rather
    than a hook of this conftest: pytest asks a session fixture's hooks of the session's folder, the rootdir,
    where a hook of ``tests/conftest.py`` is never called.
    """

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        item = _RUNNING[-1] if _RUNNING and fixturedef.argname in SHARED_WAITS else None
        timed = item is not None and getattr(item, "cancel_timeout", None) is not None
        if timed:
            request.config.hook.pytest_timeout_cancel_timer(item=item)
        try:
            return (yield)
        finally:
            if timed:
                request.config.hook.pytest_timeout_set_timer(item=item, settings=_get_item_settings(item))


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("shared-waits"):
        config.pluginmanager.register(SharedWaits(), "shared-waits")


def pytest_sessionstart(session: pytest.Session) -> None:
    """The pytest-xdist controller starts training the tiny checkpoint before its workers start, unless the run
    deselects the tests that need it (``make test-unit``); the first to need it waits for it (``tiny_checkpoint``)."""
    config = session.config
    if os.environ.get("PYTEST_XDIST_WORKER") or not getattr(config.option, "numprocesses", None):
        return
    if "not integration" in (config.option.markexpr or ""):
        return
    try:
        data = shared_data_dir()
    except RuntimeError:
        return  # the fixture raises it, in the test that asks
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]  # the fixture's own
    _TRAINING.append(start_training(_tiny_root(factory.getbasetemp() / "shared-models"), data))


def pytest_sessionfinish() -> None:
    for child in _TRAINING:
        child.kill()
        child.wait()


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
    """A small real checkpoint trained once per run (``tests.tiny_model``), via ``latest``.

    Under pytest-xdist the workers share the one the controller started training in the run's common temp folder.
    The wait for it does not count against the asking test's timeout (``pytest_fixture_setup``).
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return trained(_tiny_root(tmp_path_factory.getbasetemp() / "models"), data_dir)
    return trained(_tiny_root(tmp_path_factory.getbasetemp().parent / "shared-models"), data_dir)


def _tiny_root(default: Path) -> Path:
    return Path(os.environ[TINY_ROOT_ENV]) if os.environ.get(TINY_ROOT_ENV) else default
