"""Model throughput without Kafka: one text at a time vs batches of 8/32/64, bucketing on/off, per backend.

Offline (every text in one call, sorted by length) is the limit; micro-batches (one call per batch, in
arrival order) are what the worker can reach. No Kafka, cache or JSON: just ``Classifier.predict_proba``.
Configurations are interleaved and each is timed ``repeats`` times, keeping the best, so a neighbour's
burst of CPU use on a shared machine hurts one sample rather than one configuration.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import structlog

from loadtest.bench.common import REFERENCE, BenchResult
from triage.checkpoint import CheckpointError
from triage.classifier import Classifier

__all__ = ["BACKENDS", "MODES", "bench_model"]

log = structlog.get_logger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")


Mode = Literal["one at a time", "offline, bucketed", "offline, unbucketed", "micro-batches"]
MODES: tuple[Mode, ...] = ("offline, bucketed", "offline, unbucketed", "micro-batches")


def _texts_per_s(classifier: Classifier, texts: Sequence[str], batch_size: int, mode: Mode) -> float:
    """One timed pass.

    ``offline`` hands every text to one call (the classifier splits it into ``batch_size`` forward passes,
    sorted by length when bucketed: the limit). ``micro-batches`` calls once per ``batch_size`` texts in
    arrival order, as the worker does, so each batch pads to its own longest text.
    """
    classifier.batch_size = batch_size
    classifier.bucket_by_length = mode != "offline, unbucketed"
    started = time.perf_counter()
    if mode.startswith("offline"):
        classifier.predict_proba(list(texts))
    else:
        step = 1 if mode == "one at a time" else batch_size
        for start in range(0, len(texts), step):
            classifier.predict_proba(list(texts[start : start + step]))
    return len(texts) / (time.perf_counter() - started)


def bench_model(
    checkpoint: Path,
    texts: Sequence[str],
    batch_sizes: Sequence[int] = (8, 32, 64),
    backends: Sequence[str] = BACKENDS,
    repeats: int = 2,
) -> BenchResult:
    """Texts/s of every (backend, batch size, mode) on the same texts, best of ``repeats``.

    Args:
        checkpoint: Checkpoint folder (or ``latest``); ONNX backends need ``triage export`` first.
        texts: The texts to classify (Banking77 test texts in the CLI).
        batch_sizes: Batch sizes besides one at a time.
        backends: ``torch``, ``onnx``, ``onnx-int8``; those not exported are noted and skipped.
        repeats: Timed passes per configuration (best kept).
    """
    import torch

    result = BenchResult(
        "model",
        f"Model throughput without Kafka (texts/s, best of {repeats}, {len(texts)} Banking77 test texts)",
        {
            "checkpoint": str(checkpoint),
            "texts": len(texts),
            "repeats": repeats,
            "batch_sizes": list(batch_sizes),
            "torch_threads": torch.get_num_threads(),
        },
    )
    classifiers: dict[str, Classifier] = {}
    for backend in backends:
        try:
            classifiers[backend] = Classifier.load(checkpoint, backend=backend)  # type: ignore[arg-type]
        except CheckpointError as exc:
            result.notes.append(f"{backend} skipped: {str(exc).splitlines()[0]}")
    if not classifiers:
        raise CheckpointError(f"no backend could load {checkpoint}: {result.notes}")
    result.params["model_version"] = next(iter(classifiers.values())).version
    configs: list[tuple[str, int, Mode]] = [(b, 1, "one at a time") for b in classifiers]
    configs += [(b, size, mode) for b in classifiers for size in batch_sizes for mode in MODES]
    best: dict[tuple[str, int, Mode], float] = {}
    for clf in classifiers.values():
        _texts_per_s(clf, texts[:64], 32, "micro-batches")
    for repeat in range(repeats):
        for backend, size, mode in configs:
            rate = _texts_per_s(classifiers[backend], texts, size, mode)
            best[(backend, size, mode)] = max(rate, best.get((backend, size, mode), 0.0))
            log.info(
                "bench_model_sample",
                repeat=repeat,
                backend=backend,
                batch=size,
                mode=mode,
                texts_per_s=round(rate, 1),
            )
    for (backend, size, mode), rate in best.items():
        result.add(
            backend=backend,
            batch=size,
            mode=mode,
            texts_per_s=round(rate, 1),
            vs_one_at_a_time=round(rate / best[(backend, 1, "one at a time")], 2),
        )
    for backend in classifiers:
        one = best[(backend, 1, "one at a time")]
        for size in batch_sizes:
            offline, unbucketed = (
                best[(backend, size, "offline, bucketed")],
                best[(backend, size, "offline, unbucketed")],
            )
            result.ratio(f"{backend} batch {size} offline / one at a time", offline, one)
            result.ratio(f"{backend} batch {size} bucketing on / off", offline, unbucketed)
            result.ratio(
                f"{backend} micro-batches of {size} / one at a time",
                best[(backend, size, "micro-batches")],
                one,
            )
    top = {b: max(v for (bb, _, _), v in best.items() if bb == b) for b in classifiers}
    for backend in classifiers:
        if backend != "torch" and "torch" in classifiers:
            result.ratio(f"{backend} best / torch best", top[backend], top["torch"])
    result.notes.append(
        f"reference (issue #6, MiniLM-L6 fp32): one at a time "
        f"{REFERENCE['model_fp32_one_at_a_time_texts_per_s']}/s, batch 8 "
        f"{REFERENCE['model_fp32_batch8_texts_per_s']}/s, batch 32 "
        f"{REFERENCE['model_fp32_batch32_texts_per_s']}/s"
    )
    return result
