"""Prometheus metrics of one worker process, in their own registry so each app (and test) starts at zero."""

from __future__ import annotations

from functools import partial

from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class WorkerMetrics:
    """Every metric the worker exports on ``/metrics``: its own (``triage_``) and Faust's sensors (``faust_``).

    Faust's ``PrometheusMonitor`` (``faust``) counts messages in and out, sends, commits and rebalances, and
    exports each partition's end and committed offset: their difference is the consumer lag.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.faust = FaustMetrics.create(self.registry, "faust")
        counter, gauge = partial(Counter, registry=self.registry), partial(Gauge, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        self.tickets_in = counter("triage_tickets_in", "Messages consumed, by topic.", ["topic"])
        self.records_out = counter(
            "triage_records_out", "Records published and acknowledged by the broker, by topic.", ["topic"])
        self.tickets_triaged = counter(
            "triage_tickets_triaged", "Tickets triaged, by category and priority.", ["category", "priority"])
        self.out_of_scope = counter(
            "triage_out_of_scope", "Tickets triaged as outside the taxonomy (triage.out_of_scope).")
        self.dead_letters = counter(
            "triage_dead_letters", "Messages sent to the dead-letter topic, by reason.", ["reason"])
        self.batch_size = histogram("triage_batch_size", "Messages per micro-batch.", buckets=_BATCH_BUCKETS)
        self.inference_seconds = histogram(
            "triage_inference_seconds", "Model time per model call (cache misses only).", buckets=_LATENCY_BUCKETS)
        self.model_call_texts = histogram(
            "triage_model_call_texts",
            "Texts per model call: the cache misses of one micro-batch, or of several merged while the model "
            "was busy.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.end_to_end_seconds = histogram(
            "triage_end_to_end_seconds", "From a ticket's Kafka timestamp to the broker acknowledging its enriched "
            "record.", buckets=_LATENCY_BUCKETS)
        self.cache_hits = counter("triage_cache_hits", "Tickets answered from the cache.")
        self.cache_misses = counter("triage_cache_misses", "Tickets looked up in the cache and not found.")
        self.cache_errors = counter(
            "triage_cache_errors", "Redis calls that failed or timed out (the batch went on uncached).", ["operation"])
        self.cache_available = gauge(
            "triage_cache_available", "1 while the cache answers, 0 while the worker runs without it.")
        self.cache_hit_ratio = gauge(
            "triage_cache_hit_ratio", "Hits / lookups since start (use rate() of the counters for windows).")
        self.model_info = gauge("triage_model_info", "1 for the model version being served.", ["version"])
        self.model_reloads = counter("triage_model_reloads", "Hot reload attempts, by result (ok, failed).", ["result"])
        self.model_restarts = counter(
            "triage_model_restarts", "Model processes killed and started again, by reason (died, timeout: a call "
            "past its deadline).", ["reason"])
        self.model_up = gauge("triage_model_up", "1 while the model answers; 0 while it loads, restarts, is stopped "
                              "or dies on each call.")
        self.unconfirmed_produce_seconds = gauge("triage_oldest_unconfirmed_produce_seconds", "Age of the oldest "
                                                 "produced record batch the broker has not acknowledged (0: none).")
        self.inflight_bytes = gauge(
            "triage_inflight_bytes", "Bytes of fetched messages not yet committed (buffered or in flight).")
        self.publish_failures = counter(
            "triage_publish_failures", "Batches whose records the broker did not acknowledge.")
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
