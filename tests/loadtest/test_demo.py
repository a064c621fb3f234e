"""``triage demo`` end to end with the real worker: exits 0, lost = 0, and leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from loadtest.broker import free_port
from loadtest.demo import cache_settings
from loadtest.report import Report
from worker.settings import RedisSettings, WorkerSettings


def _demo(args: list[str], results: Path, data_dir: Path, **env_extra: str) -> subprocess.Popen[str]:
    # The smallest session timeout: Tansu answers the worker's JoinGroup after half of it.
    env = {**os.environ, "TRIAGE_RESULTS_DIR": str(results), "TRIAGE_DATA_DIR": str(data_dir),
           "TRIAGE_SESSION_TIMEOUT_S": "6", **env_extra}
    return subprocess.Popen(
        [sys.executable, "-c", "from triage.cli import main; main()", "demo", "--no-live", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _survivors(output: str, results: Path) -> list[str]:
    """Processes still carrying the demo worker's group id or its broker's port (what ``ps`` shows)."""
    (demo_dir,) = results.glob("loadtest/demo-*")
    group = "TRIAGE_GROUP_ID=triage-" + demo_dir.name
    port = re.search(r"embedded broker on (127\.0\.0\.1:\d+)", output)
    assert port, output
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if port.group(1) in cmdline or group in environ.split("\0"):
            found.append(f"{proc.name} {cmdline[:120]}")
    return found


@pytest.mark.slow
def test_demo_runs_the_whole_stack_and_stops_everything(
    tiny_checkpoint: Path, data_dir: Path, tmp_path: Path
) -> None:
    demo = _demo(["--model", str(tiny_checkpoint), "--count", "300", "--rate", "100"], tmp_path, data_dir)
    output, _ = demo.communicate(timeout=240)
    assert demo.returncode == 0, output
    assert "every process the demo started has exited" in output
    (report_path,) = tmp_path.glob("loadtest/demo-*/*/report.json")
    report = Report.model_validate_json(report_path.read_text())
    assert report.counts.produced == 300 and report.counts.lost == 0
    assert report.counts.produced == report.counts.enriched + report.counts.dead_lettered
    assert report.offtopic.sent > 0 and report.offtopic.enriched == report.offtopic.sent
    assert "Off-topic tickets" in output and "paged (on-call)" in output
    assert report.accuracy.labelled == report.counts.enriched - report.offtopic.enriched
    assert report.batch_sizes.source == "metrics" and report.batch_sizes.batches > 0
    assert sum(report.routes.values()) == report.counts.enriched
    assert _survivors(output, tmp_path) == []
    _assert_report_alone(output, report_path.parent.parent / "demo.log")


def _assert_report_alone(screen: str, log_path: Path) -> None:
    """What a terminal or `make demo | tee` shows (stdout and stderr) holds no log event and no progress bar."""
    assert "\r" not in screen, "a carriage-return progress bar reached the screen"
    events = ("data_loaded", "collector_assigned", "loadtest_started", "child_stopped", '"event"', "categorical")
    assert not [e for e in events if e in screen], screen
    logged = log_path.read_text(encoding="utf-8")
    assert all(e in logged for e in ("loadtest_started", "collector_assigned", "child_stopped")), logged
    assert "demo.log (--verbose shows them here)" in screen


@pytest.mark.slow
def test_ctrl_c_during_the_replay_stops_every_child(
    tiny_checkpoint: Path, data_dir: Path, tmp_path: Path
) -> None:
    demo = _demo(["--model", str(tiny_checkpoint), "--count", "100000", "--rate", "50"], tmp_path, data_dir)
    assert demo.stdout is not None
    seen = ""
    deadline = time.monotonic() + 180
    while "Replaying" not in seen and time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        seen += line
    assert "Replaying" in seen, seen
    time.sleep(2)
    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 130, seen + rest
    assert "every process it started has been stopped" in rest
    assert _survivors(seen + rest, tmp_path) == []


_NOISE = """
import logging, os, sys, warnings
from pathlib import Path
import structlog
from tqdm import tqdm
from loadtest.demo import _output_to
from inference.logging import configure_logging

configure_logging("INFO")
with _output_to(Path(sys.argv[1]), 1, 2):
    structlog.get_logger("t").info("loadtest_started", run="r")
    logging.getLogger("matplotlib.category").info("Using categorical units")
    warnings.warn("a FutureWarning", FutureWarning, stacklevel=1)
    for _ in tqdm(range(3), desc="Loading weights"):
        pass
    tqdm.write("{'loss': 1.0}")
    os.write(2, b"native code\\n")
print("the report")
"""


def test_logs_warnings_and_progress_bars_go_to_the_log_file_not_the_screen(tmp_path: Path) -> None:
    """What writes to the screen while the demo runs: structlog, stdlib logging (matplotlib's notices),
    warnings, tqdm bars and the trainer's loss lines, native code; all of it lands in the log file."""
    log_path = tmp_path / "demo.log"
    run = subprocess.run(
        [sys.executable, "-c", _NOISE, str(log_path)], capture_output=True, text=True, timeout=60, check=True
    )
    assert (run.stdout, run.stderr) == ("the report\n", "")
    logged = log_path.read_text(encoding="utf-8")
    for expected in ("loadtest_started", "Using categorical units", "a FutureWarning", "Loading weights",
                     "'loss'", "native code"):
        assert expected in logged


def test_without_banking77_the_demo_says_where_it_looked(tmp_path: Path) -> None:
    """No local copy and no hub: one message naming the sources tried and the fix, no traceback."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    demo = _demo(
        [], tmp_path / "results", empty, TRIAGE_MODELS_DIR=str(tmp_path / "models"), HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
    )
    output, _ = demo.communicate(timeout=120)
    assert demo.returncode == 1, output
    assert "Banking77 not found" in output and "TRIAGE_DATA_DIR" in output, output
    assert "Traceback" not in output, output


def test_without_redis_the_demo_falls_back_to_the_in_process_cache_and_says_so() -> None:
    worker = WorkerSettings(redis=RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))
    console = Console(record=True, width=200)
    chosen = cache_settings(worker, "run-1", console)
    assert chosen == {"backend": "memory", "key_prefix": "triage-demo-run-1"}
    assert "falling back to the worker's in-process cache" in console.export_text()


def test_with_redis_the_demo_uses_it(redis_url: str) -> None:
    chosen = cache_settings(WorkerSettings(redis=RedisSettings(url=redis_url)), "run-2", Console(record=True))
    assert chosen == {"backend": "redis", "url": redis_url, "key_prefix": "triage-demo-run-2"}
