"""The model's one thread, and the merging of micro-batches that queue up while it is busy.

The agent takes a micro-batch every few milliseconds. When the model is slower than that, several
batches wait here, and they go through the model as one call: forward passes grow with the load (which is
where batching pays) instead of the model working through many tiny batches while the queue behind it
grows. No ticket waits for more than the call in progress; under light load a call holds one batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from schemas.messages import Triage
from worker.inference import Predictor
from worker.metrics import WorkerMetrics

__all__ = ["ModelQueue"]

T = TypeVar("T")


@dataclass
class _Request:
    predictor: Predictor
    texts: Sequence[str]
    result: asyncio.Future[list[Triage]]


class ModelQueue:
    """Serialises model calls on one thread and merges the requests waiting for it (same predictor only)."""

    def __init__(self, max_texts: int, metrics: WorkerMetrics) -> None:
        self.max_texts = max_texts
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-infer")
        self._waiting: list[_Request] = []
        self._runner: asyncio.Task[None] | None = None

    async def predict(self, predictor: Predictor, texts: Sequence[str]) -> list[Triage]:
        """One ``Triage`` per text; raises what the model raised on the call that held these texts."""
        loop = asyncio.get_running_loop()
        request = _Request(predictor, texts, loop.create_future())
        self._waiting.append(request)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._drain())
        return await request.result

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """Run ``func`` on the model's thread (after the calls already queued there)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def _next_group(self) -> list[_Request]:
        """The oldest request plus the following ones for the same predictor, up to ``max_texts`` texts."""
        first = self._waiting[0]
        group: list[_Request] = []
        size = 0
        for request in list(self._waiting):
            if request.predictor is not first.predictor:
                continue
            if group and size + len(request.texts) > self.max_texts:
                break
            group.append(request)
            size += len(request.texts)
            self._waiting.remove(request)
        return group

    async def _drain(self) -> None:
        while self._waiting:
            group = self._next_group()
            texts = [text for request in group for text in request.texts]
            started = time.perf_counter()
            try:
                results = await self.run(group[0].predictor.predict, texts)
                if len(results) != len(texts):
                    raise RuntimeError(f"predictor returned {len(results)} results for {len(texts)} texts")
            except Exception as exc:  # noqa: BLE001 - each waiting batch handles its own failure
                for request in group:
                    if not request.result.done():
                        request.result.set_exception(exc)
                continue
            finally:
                self._metrics.inference_seconds.observe(time.perf_counter() - started)
            self._metrics.model_call_texts.observe(len(texts))
            start = 0
            for request in group:
                if not request.result.done():
                    request.result.set_result(results[start : start + len(request.texts)])
                start += len(request.texts)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self._executor.shutdown(wait=True, cancel_futures=False)
