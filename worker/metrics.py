"""Prometheus metrics of one worker process, in their own registry so each app (and test) starts at zero."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class WorkerMetrics:
    """Every metric the worker exports on ``/metrics``; names start with ``triage_``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.tickets_in = Counter("triage_tickets_in", "Messages consumed, by topic.", ["topic"], registry=r)
        self.records_out = Counter(
            "triage_records_out", "Records published and acknowledged by the broker, by topic.", ["topic"],
            registry=r,
        )
        self.tickets_triaged = Counter(
            "triage_tickets_triaged", "Tickets triaged, by category and priority.", ["category", "priority"],
            registry=r,
        )
        self.out_of_scope = Counter(
            "triage_out_of_scope", "Tickets triaged as outside the taxonomy (triage.out_of_scope).", registry=r
        )
        self.dead_letters = Counter(
            "triage_dead_letters", "Messages sent to the dead-letter topic, by reason.", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "triage_batch_size", "Messages per micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "triage_inference_seconds", "Model time per model call (cache misses only).",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.model_call_texts = Histogram(
            "triage_model_call_texts",
            "Texts per model call: the cache misses of one micro-batch, or of several merged while the model "
            "was busy.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "triage_end_to_end_seconds",
            "From a ticket's Kafka timestamp to the broker acknowledging its enriched record.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.cache_hits = Counter("triage_cache_hits", "Tickets answered from the cache.", registry=r)
        self.cache_misses = Counter("triage_cache_misses", "Tickets looked up in the cache and not found.", registry=r)
        self.cache_errors = Counter(
            "triage_cache_errors", "Redis calls that failed or timed out (the batch went on uncached).",
            ["operation"], registry=r,
        )
        self.cache_available = Gauge(
            "triage_cache_available", "1 while the cache answers, 0 while the worker runs without it.",
            registry=r,
        )
        self.cache_hit_ratio = Gauge(
            "triage_cache_hit_ratio", "Hits / lookups since start (use rate() of the counters for windows).",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "triage_consumer_lag", "Messages not yet committed, by partition of the incoming topic.",
            ["topic", "partition"], registry=r,
        )
        self.model_info = Gauge(
            "triage_model_info", "1 for the model version being served.", ["version"], registry=r
        )
        self.model_reloads = Counter(
            "triage_model_reloads", "Hot reload attempts, by result (ok, failed).", ["result"], registry=r
        )
        self.model_restarts = Counter(
            "triage_model_restarts",
            "Model processes killed and started again, by reason (died, timeout: a call past its deadline).",
            ["reason"], registry=r,
        )
        self.inflight_bytes = Gauge(
            "triage_inflight_bytes", "Bytes of fetched messages not yet committed (buffered or in flight).",
            registry=r,
        )
        self.publish_failures = Counter(
            "triage_publish_failures", "Batches whose records the broker did not acknowledge.", registry=r
        )
        self._hits = 0
        self._lookups = 0

    def on_cache_lookup(self, hits: int, misses: int) -> None:
        self.cache_hits.inc(hits)
        self.cache_misses.inc(misses)
        self._hits += hits
        self._lookups += hits + misses
        if self._lookups:
            self.cache_hit_ratio.set(self._hits / self._lookups)

    def on_model(self, version: str, previous: str | None) -> None:
        if previous is not None:
            self.model_info.remove(previous)
        self.model_info.labels(version=version).set(1)
