"""Replay + collector against the real embedded broker, with a stand-in worker producing real records."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer

from loadtest.broker import EmbeddedBroker
from loadtest.replay import ReplayConfig
from loadtest.report import Report
from loadtest.run import run_loadtest
from loadtest.source import SourceRecord, load_source
from schemas.taxonomy import load_taxonomy
from schemas.topics import TopicSettings
from triage.cli import main


@pytest.fixture(scope="module")
def records(data_dir: Path) -> list[SourceRecord]:
    return load_source("test", data_dir)


def _run(
    broker: EmbeddedBroker,
    topics: TopicSettings,
    records: list[SourceRecord],
    config: ReplayConfig,
    **options: object,
) -> Report:
    settings = {"drain_timeout_s": 10.0, "live": False, **options}
    return asyncio.run(run_loadtest(broker.bootstrap, topics, records, config, **settings))  # type: ignore[arg-type]


def test_every_ticket_is_accounted_for(
    broker: EmbeddedBroker,
    topics: TopicSettings,
    relay_factory: Callable[..., object],
    records: list[SourceRecord],
    tmp_path: Path,
) -> None:
    relay_factory()
    config = ReplayConfig(
        source="test",
        rate=400,
        count=400,
        arrival="poisson",
        duplicate_ratio=0.2,
        malformed_ratio=0.05,
        offtopic_ratio=0.05,
        seed=7,
    )
    report = _run(broker, topics, records, config, out_root=tmp_path)
    c = report.counts
    assert c.produced == 400 and c.send_failed == 0
    assert c.lost == 0
    assert c.produced == c.enriched + c.dead_lettered
    assert c.valid == c.enriched and c.malformed == c.dead_lettered == c.dead_lettered_expected > 0
    assert c.dead_lettered_unexpected == c.malformed_enriched == c.dead_letter_code_mismatches == 0
    assert c.duplicates == c.foreign == c.schema_errors == 0
    off = report.offtopic
    assert off.sent > 0 and off.sent == off.enriched == off.out_of_scope and off.paged == 0
    assert report.accuracy.labelled == c.enriched - off.enriched
    assert report.per_topic[topics.oncall] == report.accuracy.high_support > 0
    assert report.accuracy.category == report.accuracy.priority == report.accuracy.high_recall == 1.0
    assert report.cache.hits == report.cache.repeated_texts == c.repeated_texts > 0
    assert report.latency_ms.count == c.enriched
    lat = report.latency_ms
    ordered = [lat.p50, lat.p95, lat.p99, lat.max]
    assert all(v is not None for v in ordered) and ordered == sorted(ordered)  # type: ignore[type-var]
    assert lat.p50 and lat.p50 > 0
    assert report.per_topic[topics.enriched] == c.enriched
    assert report.per_topic[topics.deadletter] == c.dead_lettered
    assert sum(report.per_topic.get(topics.route(cat), 0) for cat in load_taxonomy().categories) == c.enriched
    assert sum(report.routes.values()) == sum(report.priorities.values()) == c.enriched
    assert sum(report.dead_letter_codes.values()) == c.dead_lettered
    assert report.batch_sizes.source == "records"
    assert (
        sum(int(size) * n for size, n in report.batch_sizes.histogram.items())
        == c.enriched - report.cache.hits
    )
    assert sum(p.sent for p in report.timeline) == c.produced
    assert sum(p.completed for p in report.timeline) == c.enriched + c.dead_lettered
    assert report.throughput.completed_per_s > 0

    out_dir = tmp_path / report.run_id
    written = json.loads((out_dir / "report.json").read_text())
    assert written["counts"]["lost"] == 0 and written["run_id"] == report.run_id
    assert Report.model_validate_json((out_dir / "report.json").read_text()) == report
    for name in ("latency_over_time", "throughput_over_time", "latency_histogram", "batch_sizes"):
        assert (out_dir / f"{name}.png").stat().st_size > 1000


def test_tickets_the_worker_drops_are_reported_lost(
    broker: EmbeddedBroker,
    topics: TopicSettings,
    relay_factory: Callable[..., object],
    records: list[SourceRecord],
) -> None:
    relay_factory(drop=lambda ticket_id: ticket_id.endswith("7"))
    report = _run(broker, topics, records, ReplayConfig(rate=None, count=200, seed=2), drain_timeout_s=3.0)
    assert report.counts.lost == 20
    assert report.counts.enriched == 180
    assert report.counts.produced == report.counts.enriched + report.counts.dead_lettered + report.counts.lost


def test_records_from_earlier_runs_and_other_producers_are_ignored(
    broker: EmbeddedBroker,
    topics: TopicSettings,
    relay_factory: Callable[..., object],
    records: list[SourceRecord],
) -> None:
    relay_factory()
    first = _run(broker, topics, records, ReplayConfig(rate=None, count=100, seed=3))
    stray = KafkaProducer(bootstrap_servers=broker.bootstrap)
    stray.send(topics.enriched, b'{"ticket_id": "someone-else", "text": "hi"}')
    stray.send(topics.enriched, b"not json")
    stray.flush()
    stray.close()
    second = _run(broker, topics, records, ReplayConfig(rate=None, count=100, seed=3))
    assert first.counts.lost == second.counts.lost == 0
    assert second.counts.produced == second.counts.enriched == 100
    assert second.counts.foreign == 0, "records before the run started are skipped, not counted"
    assert second.per_topic[topics.enriched] == 100


def test_replay_command_writes_a_report_and_exits_zero(
    broker: EmbeddedBroker,
    topics: TopicSettings,
    relay_factory: Callable[..., object],
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay_factory()
    monkeypatch.setenv("TRIAGE_BROKERS", broker.bootstrap)
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(data_dir))
    for name in ("incoming", "enriched", "route_prefix", "oncall", "review", "deadletter"):
        monkeypatch.setenv(f"TRIAGE_TOPICS__{name.upper()}", getattr(topics, name))
    result = CliRunner().invoke(
        main,
        [
            "--log-json",
            "replay",
            "--rate",
            "300",
            "--count",
            "150",
            "--arrival",
            "burst",
            "--burst-size",
            "25",
            "--malformed-ratio",
            "0.1",
            "--no-live",
            "--out",
            str(tmp_path),
            "--drain-timeout",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    (report_path,) = tmp_path.glob("*/report.json")
    report = Report.model_validate_json(report_path.read_text())
    assert report.counts.produced == 150 and report.counts.lost == 0
    assert report.config.arrival == "burst" and report.config.rate == 300
    assert "lost" in result.output
