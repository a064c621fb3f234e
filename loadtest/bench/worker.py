"""The worker benchmark on a real broker: backlog drains (batching, the no-op ceiling) and latency under load.

Every run gets a fresh worker on fresh topics, because the embedded broker needs more CPU as its topics fill
(docs/benchmarks.md, "Method").
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import mean
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loadtest.bench.result import BenchResult
from loadtest.broker import EmbeddedBroker, create_topics
from loadtest.metrics import BatchHistogram, metric_total, records_out, scrape
from loadtest.processes import stop_signals
from loadtest.replay import ReplayConfig
from loadtest.report import BatchSizes, Report
from loadtest.run import Consume, run_loadtest
from loadtest.settings import LoadtestSettings, parse_brokers
from loadtest.source import SourceRecord, load_source
from loadtest.stack import RunningWorker, running_feedback, running_worker
from schemas.messages import EnrichedTicket
from schemas.topics import TopicSettings
from schemas.validation import decode_ticket

__all__ = [
    "Bench", "bench_batching", "bench_compare", "bench_latency", "bench_noop", "compare_with_offline",
    "measure_saturation",
]

log = structlog.get_logger(__name__)

_DRAIN_TIMEOUT_S = 600.0  # one backlog drain, worker start included

_DRAIN = ("throughput: backlog drained by a fresh worker alone (broker on the same cores), "
          "outputs between the 5th and 95th percentile of their Kafka timestamps")


@dataclass(frozen=True)
class Bench:
    """The checkpoint, Banking77, the cache and where results go; inside ``started()`` also the broker, on which each
    run gets a fresh worker (own topics, group and cache keys) with ``worker`` settings (a run's own win).

    Live runs first warm the worker up with ``warmup_count`` test texts, marked so none repeats a measured one.
    """

    out_dir: Path
    model_dir: Path
    test: list[SourceRecord]
    train: list[SourceRecord]
    redis_url: str
    brokers: str = ""
    worker: Mapping[str, Any] = field(default_factory=dict)
    warmup_count: int = 100

    @classmethod
    def load(cls, out_dir: Path | None, model_dir: Path | None, need_model: bool = True) -> Bench:
        """From the ``TRIAGE_*`` settings; ``need_model=False``: the no-op bench serves no checkpoint."""
        from inference.checkpoint import resolve_checkpoint
        from worker.settings import WorkerSettings

        settings = LoadtestSettings()
        model = model_dir or settings.models_dir / "latest"
        return cls(
            out_dir or settings.results_dir / "bench", resolve_checkpoint(model) if need_model else model,
            load_source("test", settings.data_dir, settings.hub_dataset),
            load_source("train", settings.data_dir, settings.hub_dataset), WorkerSettings().redis.url,
        )

    @contextmanager
    def started(self, **worker: Any) -> Iterator[Bench]:
        """This bench on an embedded broker that lives as long as the block; Ctrl-C or SIGTERM stop it in order."""
        (self.out_dir / "work").mkdir(parents=True, exist_ok=True)
        with stop_signals(), EmbeddedBroker(log_path=self.out_dir / "work" / "broker.log") as broker:
            yield replace(self, brokers=broker.bootstrap, worker=worker)

    def exported(self) -> list[str]:
        """The ONNX serving paths this checkpoint ships (``triage train`` and ``triage export`` write them)."""
        from inference.classifier import ONNX_FILES

        return [backend for backend, file in ONNX_FILES.items() if (self.model_dir / file).is_file()]

    def finish(self, result: BenchResult) -> None:
        result.print()
        print(f"written: {result.write(self.out_dir)}")

    def _worker(self, prefix: str, cache: bool, settings: Mapping[str, Any]) -> AbstractContextManager[RunningWorker]:
        return running_worker({
            "brokers": self.brokers, "group_id": prefix, "topics": TopicSettings.namespaced(prefix).model_dump(),
            "model_dir": str(self.model_dir), "redis": {"enabled": cache, "url": self.redis_url, "key_prefix": prefix},
            **self.worker, **settings,
        }, self.out_dir / "work" / f"{prefix}.log")

    def _run(self, label: str, prefix: str, records: list[SourceRecord], config: ReplayConfig,
             metrics_url: str | None = None, consume: Consume | None = None) -> Report:
        """One run on ``prefix``'s topics; one that lost tickets measured something else, so it stops the bench."""
        report = asyncio.run(run_loadtest(
            self.brokers, TopicSettings.namespaced(prefix), records, config, drain_timeout_s=60.0,
            metrics_url=metrics_url, live=False, plots=False, out_root=self.out_dir / "work" / "runs", consume=consume,
        ))
        if report.counts.lost:
            raise RuntimeError(f"{label}: {report.counts.lost} tickets lost; see run {report.run_id}")
        return report

    def drain(
        self, label: str, records: list[SourceRecord], config: ReplayConfig, cache: bool = False, naive: bool = False,
        beside: Callable[[str], AbstractContextManager[Any]] | None = None, **settings: Any,
    ) -> Report:
        """Preload ``config``'s tickets, then let a fresh worker (with ``settings``, WorkerSettings fields) or the
        naive consumer empty the topic, alone or with ``beside(prefix)`` running; the report's
        ``throughput.steady_per_s`` is the figure."""
        prefix = f"bench-{label}-{secrets.token_hex(3)}"
        topics = TopicSettings.namespaced(prefix)
        create_topics(self.brokers, {topics.incoming: topics.partitions})

        def consume(expected: int) -> BatchSizes | None:
            if naive:
                coroutine = _consume_one_at_a_time(self.brokers, topics, expected, self.model_dir)
                asyncio.run(asyncio.wait_for(coroutine, _DRAIN_TIMEOUT_S))
                return None
            with beside(prefix) if beside else nullcontext(), self._worker(prefix, cache, settings) as worker:
                _wait_published(worker, topics, expected)
                histogram = BatchHistogram.parse(scrape(worker.metrics_url))
            return histogram.as_batch_sizes() if histogram else None

        return self._run(label, prefix, records, config, consume=consume)

    def live(self, label: str, records: list[SourceRecord], config: ReplayConfig) -> Report:
        """A fresh worker (cache off), warmed up, then ``config`` replayed to it while its outputs are collected."""
        prefix = f"bench-{label}-{secrets.token_hex(3)}"
        texts = [SourceRecord(f"warm-up {r.text}", r.truth, {}) for r in self.test[: self.warmup_count]]
        warmup = ReplayConfig(source="warm-up", rate=None, count=self.warmup_count, seed=99)
        with self._worker(prefix, False, {}) as worker:
            self._run(f"{label} warm-up", prefix, texts, warmup, worker.metrics_url)
            return self._run(label, prefix, records, config, worker.metrics_url)


async def _consume_one_at_a_time(brokers: str, topics: TopicSettings, expected: int, model_dir: Path) -> None:
    """The batching benchmark's peer, what a first version of the service would do: a naive aiokafka consumer that
    takes one ticket, classifies it alone (torch fp32, batch of one), waits for its enriched record's ack, then
    takes the next, ``expected`` times; no micro-batches, cache or routing."""
    from inference.classifier import Classifier

    classifier = Classifier.load(model_dir, backend="torch", device="cpu", batch_size=1)
    create_topics(brokers, {topics.enriched: topics.partitions})
    consumer = AIOKafkaConsumer(bootstrap_servers=parse_brokers(brokers), enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=parse_brokers(brokers), acks="all")
    async with consumer, producer:
        partitions = [TopicPartition(topics.incoming, p) for p in range(topics.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        for _ in range(expected):
            record = await consumer.getone()
            ticket = decode_ticket(record.value)
            enriched = EnrichedTicket.from_ticket(ticket, classifier.predict([ticket.text])[0])
            await producer.send_and_wait(topics.enriched, enriched.model_dump_json().encode(), key=record.key)


def _wait_published(worker: RunningWorker, topics: TopicSettings, expected: int) -> None:
    """Until the worker's own counters say it published an outcome for ``expected`` tickets."""
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    done = 0.0
    while done < expected:
        if not worker.child.running or time.monotonic() > deadline:
            raise RuntimeError(f"the worker published {done:.0f} of {expected} tickets and stopped or took over "
                               f"{_DRAIN_TIMEOUT_S:.0f}s; see {worker.child.log_path}")
        time.sleep(0.2)
        done = records_out(scrape(worker.metrics_url), {topics.enriched, topics.deadletter}) or done


def _row(report: Report, live: bool = False, **row: Any) -> dict[str, Any]:
    """One run as a table row: a live run with its latency and completion rate, a drain with its steady rate."""
    figures = (
        {"p50_ms": report.latency_ms.p50, "p99_ms": report.latency_ms.p99,
         "tickets_per_s": report.throughput.completed_per_s}
        if live else
        {"tickets_per_s": report.throughput.steady_per_s, "intent_acc": report.accuracy.intent,
         "cache_hit_ratio": report.cache.hit_ratio}
    )
    return {**row, "tickets": report.counts.produced, **figures, "mean_batch": report.batch_sizes.mean,
            "lost": report.counts.lost}


def bench_batching(
    bench: Bench, count_single: int = 1000, count_batched: int = 3000, batch_size: int = 128,
    backends: Sequence[str] = (),
) -> BenchResult:
    """The default worker's backlog drain as a multiple of a naive per-ticket fp32 consumer, and why (cache off):
    ``backends`` are the exported ONNX ones to compare too."""
    from inference.classifier import resolve_backend

    serving = resolve_backend(bench.model_dir)
    default = f"default (auto: {serving.backend})"
    result = BenchResult(
        "batching",
        "Worker throughput: naive per-ticket consumer vs one at a time vs micro-batched vs the default (cache off)",
        {"count_single": count_single, "count_batched": count_batched, "batch_size": batch_size,
         "backends": ["torch", *backends], "default_backend": serving.as_dict(), "model_dir": str(bench.model_dir)},
    )
    runs = [
        ("naive consumer", "torch", 1, count_single),
        ("one-at-a-time", "torch", 1, count_single),
        ("micro-batched", "torch", batch_size, count_batched),
        *((f"micro-batched {backend}", backend, batch_size, count_batched) for backend in backends),
        (default, "auto", batch_size, count_batched),
    ]
    rates = {}
    for label, backend, size, count in runs:
        naive = label == "naive consumer"
        report = bench.drain(f"{'naive' if naive else backend}-{size}", bench.test,
                             ReplayConfig(source="test", rate=None, count=count, seed=1),
                             naive=naive, batch_size=size, model_backend=backend)
        result.rows.append(_row(report, config=label, backend=backend, batch_size=size))
        rates[label] = report.throughput.steady_per_s
    multiple = result.ratio(f"{default} / naive consumer", rates[default], rates["naive consumer"])
    result.ratio("micro-batched / one at a time", rates["micro-batched"], rates["one-at-a-time"])
    result.ratio("one-at-a-time worker / naive consumer", rates["one-at-a-time"], rates["naive consumer"])
    for backend in backends:
        result.ratio(f"micro-batched {backend} / one at a time (torch)", rates[f"micro-batched {backend}"],
                     rates["one-at-a-time"])
    if multiple:
        result.notes.append(
            f"design target: default worker ≥ 6× the naive per-ticket fp32 consumer — measured {multiple:g}× "
            f"({'met' if multiple >= 6 else 'NOT met'}); default backend {serving.backend}: {serving.reason}"
        )
    result.notes.append(_DRAIN)
    return result


def bench_compare(bench: Bench, baseline: Path, pairs: int = 4, count: int = 2000) -> BenchResult:
    """The default worker's backlog drain with this checkpoint and with ``baseline`` (a copy changed in one way),
    in pairs whose order alternates (A B, B A, ...), so a shared machine's drift falls on both sides alike."""
    result = BenchResult("compare", "Worker throughput: this checkpoint vs a baseline, interleaved drains (cache off)",
                         {"pairs": pairs, "count": count, "model_dir": str(bench.model_dir), "baseline": str(baseline)})
    sides = {"model": bench.model_dir, "baseline": baseline}
    rates: dict[str, list[float | None]] = {"model": [], "baseline": []}
    for pair in range(pairs):
        for side in ("model", "baseline") if pair % 2 == 0 else ("baseline", "model"):
            report = replace(bench, model_dir=sides[side]).drain(
                f"{side}-{pair}", bench.test, ReplayConfig(source="test", rate=None, count=count, seed=1))
            result.rows.append(_row(report, config=f"{side}, pair {pair + 1}"))
            rates[side].append(report.throughput.steady_per_s)
    result.ratio("model / baseline, means", _mean(rates["model"]), _mean(rates["baseline"]))
    result.notes.append(_DRAIN)
    return result


FEEDBACK_PUBLISHED = "triage_feedback_published_total"
"""Published tickets the feedback process stored (it checks it kept up with the drain)."""


def bench_feedback(bench: Bench, pairs: int = 2, count: int = 2000) -> BenchResult:
    """The default worker's backlog drain with the feedback process consuming its enriched topic and without, in
    pairs whose order alternates; the feedback process runs beside the worker on the same cores."""
    result = BenchResult("feedback", "Worker throughput with and without the feedback process (cache off)",
                         {"pairs": pairs, "count": count, "model_dir": str(bench.model_dir)})
    rates: dict[str, list[float | None]] = {"with feedback": [], "alone": []}
    seen: list[float] = []

    @contextmanager
    def feedback_process(prefix: str) -> Iterator[None]:
        """The feedback process on this drain's topics; on the way out, how many published tickets it stored."""
        with running_feedback({
            "brokers": bench.brokers, "topics": TopicSettings.namespaced(prefix).model_dump(),
            "model_dir": str(bench.model_dir),
            "feedback": {"group_id": f"{prefix}-feedback", "data_dir": str(bench.out_dir / "work" / prefix),
                         "store": {"url": bench.redis_url, "key_prefix": f"{prefix}-feedback", "ttl_s": 3600}},
        }, bench.out_dir / "work" / f"{prefix}-feedback.log") as url:
            yield
            deadline = time.monotonic() + 30
            while (stored := metric_total(scrape(url), FEEDBACK_PUBLISHED)) < count and time.monotonic() < deadline:
                time.sleep(0.5)
            seen.append(stored)

    for pair in range(pairs):
        for side in ("with feedback", "alone") if pair % 2 == 0 else ("alone", "with feedback"):
            report = bench.drain(f"{side.replace(' ', '-')}-{pair}", bench.test,
                                 ReplayConfig(source="test", rate=None, count=count, seed=1),
                                 beside=feedback_process if side == "with feedback" else None)
            extra = {"feedback_stored": seen[-1]} if side == "with feedback" else {}
            result.rows.append({**_row(report, config=f"{side}, pair {pair + 1}"), **extra})
            rates[side].append(report.throughput.steady_per_s)
    result.ratio("with feedback / alone, means", _mean(rates["with feedback"]), _mean(rates["alone"]))
    result.notes.append(_DRAIN)
    return result


def _mean(rates: list[float | None]) -> float | None:
    """None when a drain was too short to measure, rather than a mean pulled down by a zero."""
    return None if None in rates else mean(rate for rate in rates if rate is not None)


def compare_with_offline(batching: BenchResult, model: BenchResult) -> None:
    """Add "worker / model's best offline rate" per backend: how close the stream gets to the limit."""
    for row in batching.rows:
        offline = [r["texts_per_s"] for r in model.rows if r["backend"] == row["backend"]]
        if row["batch_size"] > 1 and offline:
            name = f"{row['config']} worker / {row['backend']} best offline"
            batching.ratio(name, row["tickets_per_s"], max(offline))


def bench_noop(bench: Bench, count: int = 10000) -> BenchResult:
    """The pipeline's own ceiling: Kafka in and out, schemas, the Redis cache and routing, with the no-op model."""
    result = BenchResult("noop", "No-op model pipeline ceiling (Kafka + schemas + cache + routing)", {"count": count})
    config = ReplayConfig(source="train", rate=None, count=count, seed=2)
    report = bench.drain("noop", bench.train, config, cache=True, model_backend="noop")
    result.rows.append(_row(report, config="worker, noop model, cache on"))
    rate = report.throughput.steady_per_s or 0.0
    result.notes += [f"design target: ≥ 5,000 tickets/s on one process — measured {rate:,.1f}/s", _DRAIN]
    return result


def measure_saturation(bench: Bench, result: BenchResult, duration_s: float, count: int, max_steps: int = 3) -> float:
    """The highest Poisson rate the worker keeps up with, found from above: offered the burst rate of a backlog
    replay (whose full batches overstate it), the worker falls behind, and what it sustains is the next offer,
    until it keeps up (sustained ≥ 95% of offered) or ``max_steps`` more offers were made."""
    report = bench.live("latency-burst", bench.train, ReplayConfig(source="train", rate=None, count=count, seed=4))
    offered = report.throughput.completed_per_s
    result.rows.append(_row(report, live=True, config="burst (backlog replay)", offered_per_s=None))
    for step in range(max_steps + 1):
        config = ReplayConfig(source="train", rate=offered, duration=duration_s, arrival="poisson", seed=5 + step)
        report = bench.live(f"latency-saturation-{step}", bench.train, config)
        sending = [point for point in report.timeline if point.sent]
        window = sending[len(sending) // 4 : -1]  # outputs/s while tickets still arrive, the first quarter left out
        if len(window) < 2:
            raise RuntimeError("saturation run too short to measure; raise --duration")
        sustained = round(sum(point.completed for point in window) / len(window), 1)
        label = "overload (offered at burst rate)" if step == 0 else f"offered the rate sustained before ({step})"
        result.rows.append({**_row(report, live=True, config=label, offered_per_s=round(offered, 1)),
                            "sustained_per_s": sustained})
        log.info("bench_saturation_step", step=step, offered=round(offered, 1), sustained=sustained)
        if sustained >= 0.95 * offered:
            return offered
        offered = min(sustained, offered)
    return offered


def bench_latency(
    bench: Bench, saturation: float | None = None, duration_s: float = 20.0,
    levels: Sequence[float] = (0.25, 0.5, 0.75, 1.0), saturation_count: int = 3000, max_steps: int = 3,
) -> BenchResult:
    """p50/p99 end to end at ``levels`` (fractions) of the saturation throughput, Poisson arrivals, cache off, each
    for ``duration_s``; ``saturation`` (tickets/s) is measured first when None (``measure_saturation``)."""
    result = BenchResult("latency", "Latency vs offered load (Poisson arrivals, micro-batched, cache off)",
                         {"duration_s": duration_s, "levels": list(levels), "model_dir": str(bench.model_dir)})
    if saturation is None:
        saturation = measure_saturation(bench, result, duration_s, saturation_count, max_steps=max_steps)
    result.params["saturation_per_s"] = saturation
    p99 = {}
    for level in levels:
        rate = saturation * level
        config = ReplayConfig(source="train", rate=rate, duration=duration_s, arrival="poisson", seed=int(level * 100))
        report = bench.live(f"latency-{round(level * 100)}", bench.train, config)
        result.rows.append(_row(report, live=True, config=f"{level:.0%} of saturation", offered_per_s=round(rate, 1)))
        p99[level] = report.latency_ms.p99
    if (half := p99.get(0.5)) is not None:
        result.notes.append(f"target: p99 ≤ 250 ms at 50% of saturation — measured {half:.0f} ms "
                            f"({'met' if half <= 250 else 'NOT met'})")
    for level in levels:
        if level != 0.25 and 0.25 in p99:
            result.ratio(f"p99 at {level:.0%} / p99 at 25%", p99[level], p99[0.25])
    result.notes.append("the replay producer and the collector run on the same cores as the worker")
    return result
