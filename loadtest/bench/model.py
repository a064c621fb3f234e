"""Model throughput without Kafka: batches of 8/32/64, offline (bucketed or not) and as micro-batches, per backend.

Offline (every text in one call, sorted by length) is the limit; micro-batches (one call per batch, in arrival
order) are what the worker can reach. Configurations are interleaved, each timed ``repeats`` times keeping the
best, so a neighbour's burst of CPU use hurts one sample rather than one configuration. One text per call is
not timed here: ``triage export`` measures it per engine and stores it in the checkpoint, shown beside these.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

from inference.checkpoint import CheckpointError
from inference.classifier import Classifier
from loadtest.bench.result import BenchResult

__all__ = ["BACKENDS", "MODES", "bench_model"]

BACKENDS = ("torch", "onnx", "onnx-int8")

Mode = Literal["offline, bucketed", "offline, unbucketed", "micro-batches"]
MODES: tuple[Mode, ...] = get_args(Mode)


def _texts_per_s(classifier: Classifier, texts: Sequence[str], batch_size: int, mode: Mode) -> float:
    """One timed pass: micro-batches pad each call to its own longest text; offline the classifier splits one call
    into ``batch_size`` forward passes itself."""
    classifier.batch_size = batch_size
    classifier.bucket_by_length = mode != "offline, unbucketed"
    step = batch_size if mode == "micro-batches" else len(texts)
    calls = [list(texts[start : start + step]) for start in range(0, len(texts), step)]
    started = time.perf_counter()
    for call in calls:
        classifier.predict_proba(call)
    return len(texts) / (time.perf_counter() - started)


def _one_text_per_call(checkpoint: Path) -> str:
    """What ``triage export`` measured one text at a time on this checkpoint (its metrics.json), as a note."""
    path = checkpoint / "metrics.json"
    export = json.loads(path.read_text(encoding="utf-8")).get("export", {}) if path.is_file() else {}
    if not export.get("engines"):
        return "one text per call: not measured on this checkpoint; `triage export` measures it per engine"
    rates = ", ".join(f"{name} {row['single_texts_per_second']:,.1f}/s" for name, row in export["engines"].items())
    measured = f"{export['bench_texts']} texts, {export['threads']} threads"
    return f"one text per call, from `triage export` ({measured}): {rates}"


def bench_model(
    checkpoint: Path, texts: Sequence[str], batch_sizes: Sequence[int] = (8, 32, 64),
    backends: Sequence[str] = BACKENDS, repeats: int = 2,
) -> BenchResult:
    """Texts/s of every (backend, batch size, mode) on the same texts, best of ``repeats``; backends the checkpoint
    has not exported (``triage train`` writes them) are noted and skipped."""
    import torch

    result = BenchResult(
        "model", f"Model throughput without Kafka (texts/s, best of {repeats}, {len(texts)} Banking77 test texts)",
        {"checkpoint": str(checkpoint), "texts": len(texts), "repeats": repeats, "batch_sizes": list(batch_sizes),
         "torch_threads": torch.get_num_threads()},
    )
    classifiers: dict[str, Classifier] = {}
    for backend in backends:
        try:
            classifiers[backend] = Classifier.load(
                checkpoint, backend=backend, threads=torch.get_num_threads()  # type: ignore[arg-type]
            )
        except CheckpointError as exc:
            result.notes.append(f"{backend} skipped: {str(exc).splitlines()[0]}")
    if not classifiers:
        raise CheckpointError(f"no backend could load {checkpoint}: {result.notes}")
    result.params["model_version"] = next(iter(classifiers.values())).version
    for classifier in classifiers.values():
        _texts_per_s(classifier, texts[:64], 32, "micro-batches")
    best: dict[tuple[str, int, Mode], float] = {}
    for _ in range(repeats):
        for config in [(b, size, mode) for b in classifiers for size in batch_sizes for mode in MODES]:
            best[config] = max(_texts_per_s(classifiers[config[0]], texts, *config[1:]), best.get(config, 0.0))
    result.rows = [
        {"backend": backend, "batch": size, "mode": mode, "texts_per_s": round(rate, 1)}
        for (backend, size, mode), rate in best.items()
    ]
    for backend in classifiers:
        for size in batch_sizes:
            on, off = best[(backend, size, "offline, bucketed")], best[(backend, size, "offline, unbucketed")]
            result.ratio(f"{backend} batch {size} bucketing on / off", on, off)
    top = {b: max(rate for (backend, _, _), rate in best.items() if backend == b) for b in classifiers}
    for backend in [b for b in classifiers if b != "torch"]:
        result.ratio(f"{backend} best / torch best", top[backend], top.get("torch"))
    result.notes.append(_one_text_per_call(checkpoint))
    return result
