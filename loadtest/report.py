"""A finished ledger as the load-test report: counts, latency, throughput, accuracy, cache, timeline."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from loadtest.collector import Collector
from loadtest.ledger import Ledger, Tracked
from loadtest.replay import OFFTOPIC, ReplayConfig
from schemas.enums import Priority
from schemas.topics import TopicSettings

__all__ = ["Accuracy", "BatchSizes", "CacheStats", "Counts", "LatencyStats", "OffTopic", "Report", "Throughput",
           "TimelinePoint", "batch_sizes_from_records", "build_report", "latency_stats", "steady_rate"]


class Counts(BaseModel):
    """Message accounting; ``produced == enriched + dead_lettered + lost`` always holds."""

    produced: int = Field(description="Messages the broker acknowledged.")
    send_failed: int = Field(description="Messages the producer could not deliver (not counted as produced).")
    valid: int = Field(description="Produced tickets expected to be enriched.")
    malformed: int = Field(description="Produced bad messages expected on the dead-letter topic.")
    repeated_texts: int = Field(description="Valid tickets whose text was already sent in this run.")
    enriched: int
    dead_lettered: int
    dead_lettered_expected: int = Field(description="Malformed messages dead-lettered, as they should be.")
    dead_lettered_unexpected: int = Field(description="Valid tickets that ended on the dead-letter topic.")
    malformed_enriched: int = Field(description="Bad messages that were enriched anyway (a worker bug).")
    dead_letter_code_mismatches: int = Field(description="Dead letters whose error code differs from expected.")
    lost: int = Field(description="Produced but never seen on any output topic; must be 0.")
    duplicates: int = Field(description="Extra deliveries of the same message on the same topic.")
    foreign: int = Field(description="Output records from other runs or producers, ignored.")
    schema_errors: int = Field(description="Output records that do not parse as their topic's schema.")


class LatencyStats(BaseModel):
    count: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


class Throughput(BaseModel):
    offered_per_s: float = Field(description="Produced messages / send window.")
    completed_per_s: float = Field(description="Messages resolved / (last output - first send).")
    peak_per_s: float = Field(description="Busiest whole second of completions.")
    steady_per_s: float | None = Field(default=None, description="Outputs/s between the 5th and 95th percentile.")
    send_seconds: float
    total_seconds: float = Field(description="First send to last output.")


class Accuracy(BaseModel):
    """Online accuracy of enriched tickets against the ground truth carried in their metadata."""

    labelled: int
    category: float | None = None
    priority: float | None = None
    intent: float | None = None
    high_recall: float | None = None
    high_support: int = 0


class CacheStats(BaseModel):
    hits: int
    hit_ratio: float | None = Field(description="Cached triages / enriched tickets.")
    repeated_texts: int = Field(description="Upper bound on hits: texts sent more than once in this run.")


class OffTopic(BaseModel):
    """The generated off-topic tickets of a run: each should be flagged out of scope, none paged."""

    sent: int = Field(default=0, description="Off-topic tickets the broker acknowledged.")
    enriched: int = Field(default=0, description="Of those, triaged by the worker.")
    out_of_scope: int = Field(default=0, description="Triaged with triage.out_of_scope set.")
    paged: int = Field(default=0, description="Seen on the on-call topic (priority High).")


class BatchSizes(BaseModel):
    source: Literal["metrics", "records", "none"]
    histogram: dict[str, int] = Field(description="Batch size (or bucket upper bound) → number of batches.")
    batches: int
    mean: float | None = None


class TimelinePoint(BaseModel):
    second: int
    sent: int
    completed: int
    p50_ms: float | None = None
    p99_ms: float | None = None


class Report(BaseModel):
    run_id: str
    started_at: datetime
    finished_at: datetime
    config: ReplayConfig
    brokers: list[str]
    input_topic: str
    output_topics: list[str]
    counts: Counts
    latency_ms: LatencyStats
    throughput: Throughput
    accuracy: Accuracy
    cache: CacheStats
    offtopic: OffTopic = Field(default_factory=OffTopic)
    per_topic: dict[str, int]
    routes: dict[str, int] = Field(description="Enriched tickets per predicted category.")
    priorities: dict[str, int]
    dead_letter_codes: dict[str, int]
    batch_sizes: BatchSizes
    timeline: list[TimelinePoint]
    schema_samples: list[str] = Field(default_factory=list)
    plots: list[str] = Field(default_factory=list)


def latency_stats(values_ms: Sequence[float]) -> LatencyStats:
    if not values_ms:
        return LatencyStats(count=0)
    p50, p95, p99, top = (round(float(p), 2) for p in np.percentile(values_ms, [50, 95, 99, 100]))
    mean = round(float(np.mean(values_ms)), 2)
    return LatencyStats(count=len(values_ms), p50=p50, p95=p95, p99=p99, max=top, mean=mean)


def steady_rate(times: Sequence[float], trim: float = 0.05) -> float | None:
    """Outputs per second between the ``trim`` and ``1 - trim`` quantiles of their times: in a backlog drain the rate
    the worker sustains, without its start (group join, cold forward passes) and its last partial batches."""
    ordered = sorted(times)
    low = int(len(ordered) * trim)
    high = len(ordered) - 1 - low
    if high - low < 1 or ordered[high] <= ordered[low]:
        return None
    return round((high - low) / (ordered[high] - ordered[low]), 1)


def batch_sizes_from_records(entries: Sequence[Tracked]) -> BatchSizes:
    """Model batches inferred from triages: one ``Classifier.predict`` call stamps one ``latency_ms``."""
    triages = [e.triage for e in entries if e.triage is not None and not e.triage.cached and e.triage.latency_ms > 0]
    groups = Counter((triage.model_version, triage.latency_ms) for triage in triages)
    if not groups:
        return BatchSizes(source="none", histogram={}, batches=0)
    sizes = Counter(groups.values())
    return BatchSizes(source="records", histogram={str(size): n for size, n in sorted(sizes.items())},
                      batches=len(groups), mean=round(sum(groups.values()) / len(groups), 2))


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _accuracy(enriched: list[Tracked]) -> Accuracy:
    pairs = [(e.triage, e.truth) for e in enriched if e.truth is not None and e.triage is not None]
    high = [triage for triage, truth in pairs if truth.priority is Priority.HIGH]
    return Accuracy(
        labelled=len(pairs),
        category=_ratio(sum(triage.category == truth.category for triage, truth in pairs), len(pairs)),
        priority=_ratio(sum(triage.priority == truth.priority for triage, truth in pairs), len(pairs)),
        intent=_ratio(sum(triage.intent == truth.intent for triage, truth in pairs), len(pairs)),
        high_recall=_ratio(sum(triage.priority is Priority.HIGH for triage in high), len(high)),
        high_support=len(high),
    )


def _offtopic(produced: list[Tracked], oncall: str) -> OffTopic:
    sent = [e for e in produced if e.kind == OFFTOPIC]
    triaged = [e.triage for e in sent if e.outcome == "enriched" and e.triage is not None]
    return OffTopic(sent=len(sent), enriched=len(triaged), out_of_scope=sum(t.out_of_scope for t in triaged),
                    paged=sum(1 for e in sent if e.deliveries[oncall]))


def _timeline(produced: list[Tracked], t0: float) -> list[TimelinePoint]:
    sent = Counter(int(e.sent_at - t0) for e in produced)
    completed = Counter(int(e.seen_at - t0) for e in produced if e.seen_at is not None)
    latencies: defaultdict[int, list[float]] = defaultdict(list)
    for e in produced:
        if e.enriched_at is not None and e.latency_ms is not None:
            latencies[int(e.sent_at - t0)].append(e.latency_ms)
    points = []
    for second in range(max([*sent, *completed], default=-1) + 1):
        stats = latency_stats(latencies[second])
        points.append(TimelinePoint(second=second, sent=sent[second], completed=completed[second],
                                    p50_ms=stats.p50, p99_ms=stats.p99))
    return points


def build_report(
    run_id: str, config: ReplayConfig, brokers: list[str], topics: TopicSettings, ledger: Ledger,
    collector: Collector, batch_sizes: BatchSizes | None = None,
) -> Report:
    """Summarise one run; call it after the replay has stopped and the collector has drained."""
    produced = [e for e in ledger.entries if e.acked]
    enriched = [e for e in produced if e.outcome == "enriched"]
    dead = [e for e in produced if e.outcome == "deadletter"]
    sent_times = [e.sent_at for e in produced] or [0.0]
    seen_times = [t for e in produced for t in (e.enriched_at, e.deadlettered_at) if t is not None]
    t0, t_sent = min(sent_times), max(sent_times)
    t_end = max(seen_times, default=t_sent)
    total = max(t_end - t0, 1e-9)
    hits = sum(1 for e in enriched if e.triage is not None and e.triage.cached)
    repeated = sum(1 for e in produced if e.repeat)
    per_topic = sum((e.deliveries for e in ledger.entries), Counter[str]())
    counts = Counts(
        produced=len(produced), send_failed=sum(1 for e in ledger.entries if e.acked is False),
        valid=sum(not e.malformed for e in produced), malformed=sum(e.malformed for e in produced),
        repeated_texts=repeated, enriched=len(enriched), dead_lettered=len(dead),
        dead_lettered_expected=sum(e.malformed for e in dead),
        dead_lettered_unexpected=sum(not e.malformed for e in dead),
        malformed_enriched=sum(e.malformed for e in enriched),
        dead_letter_code_mismatches=sum(1 for e in dead if e.expected_code and e.dead_code != e.expected_code),
        lost=sum(1 for e in produced if e.outcome is None),
        duplicates=sum(n - 1 for e in produced for n in e.deliveries.values() if n > 1),
        foreign=collector.foreign, schema_errors=collector.schema_errors,
    )
    throughput = Throughput(
        offered_per_s=round(len(produced) / max(t_sent - t0, 1e-9), 1) if len(produced) > 1 else 0.0,
        completed_per_s=round((len(enriched) + len(dead)) / total, 1),
        peak_per_s=float(max(Counter(int(t - t0) for t in seen_times).values(), default=0)),
        steady_per_s=steady_rate([e.seen_at for e in produced if e.seen_at is not None]),
        send_seconds=round(t_sent - t0, 3), total_seconds=round(total, 3),
    )

    def tally(values: Iterable[str]) -> dict[str, int]:
        return dict(sorted(Counter(values).items()))

    return Report(
        run_id=run_id, started_at=datetime.fromtimestamp(t0, UTC), finished_at=datetime.fromtimestamp(t_end, UTC),
        config=config, brokers=brokers, input_topic=topics.incoming, output_topics=collector.topics_read, counts=counts,
        latency_ms=latency_stats([e.latency_ms for e in enriched if e.latency_ms is not None]), throughput=throughput,
        accuracy=_accuracy(enriched),
        cache=CacheStats(hits=hits, hit_ratio=_ratio(hits, len(enriched)), repeated_texts=repeated),
        offtopic=_offtopic(produced, topics.oncall), per_topic=dict(sorted(per_topic.items())),
        routes=tally(e.triage.category for e in enriched if e.triage),
        priorities=tally(e.triage.priority.value for e in enriched if e.triage),
        dead_letter_codes=tally(e.dead_code.value for e in dead if e.dead_code),
        batch_sizes=batch_sizes or batch_sizes_from_records(enriched), timeline=_timeline(produced, t0),
        schema_samples=collector.schema_samples,
    )
