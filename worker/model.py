"""The one model client: the checkpoint in its own process, calls with a deadline, restarts, merged batches.

A ``ProcessPoolExecutor(max_workers=1)`` on a forkserver context loads the checkpoint in its initializer: in the
worker process each model op re-takes the GIL from the event loop and Faust's consumer thread. The fork server
imports the serving libraries once (``_preload``), so a restart loads weights, not those imports. Batches that
wait while the model is busy go through it as one call, so forward passes grow with the load. Faults, by whose they are:
the predictor raised → ``ModelFailed`` (the texts'; the pipeline retries them one by one); the process died or
missed ``model_call_timeout_s`` → killed, restarted, retried once, ``ModelFailed`` if it dies again; a new
process cannot load (out of memory, folder gone) → the infrastructure's: the call waits with backoff while
``problem`` (so ``/health``) says why, which stops the pipeline and the consumer. It never fails a ticket.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from schemas.enums import Priority
from schemas.messages import Confidence, IntentScore, Triage
from schemas.taxonomy import load_taxonomy
from worker.metrics import WorkerMetrics
from worker.settings import WorkerSettings

if TYPE_CHECKING:
    from inference.classifier import Classifier

__all__ = ["NOOP_VERSION", "Engine", "ModelClient", "ModelFailed", "NoopPredictor", "Predictor", "load_predictor"]

log = structlog.get_logger(__name__)

NOOP_VERSION = "noop"
_PRELOAD = ["worker.model", "inference.classifier"]
_BACKOFF_MAX_S = 30.0


class Predictor(Protocol):
    """What the model process runs: ``Classifier.predict(texts) -> list[Triage]``, or the no-op stand-in."""

    version: str

    def predict(self, texts: Sequence[str]) -> list[Triage]: ...


class ModelFailed(Exception):
    """The model failed on these texts (it raised, or its process died twice on them)."""


NOOP_SERVING = {"backend": "noop", "reason": "set explicitly: a constant answer without a model"}


class NoopPredictor:
    """A constant answer without a model, so benchmarks can measure the pipeline's own ceiling."""

    version = NOOP_VERSION

    def __init__(self) -> None:
        self._answer = Triage(
            category=load_taxonomy().out_of_scope_category,
            priority=Priority.LOW,
            intent=NOOP_VERSION,
            confidence=Confidence(category=1.0, intent=1.0, priority=1.0),
            top_intents=[IntentScore(intent=NOOP_VERSION, probability=1.0)],
            needs_review=False,
            model_version=NOOP_VERSION,
        )

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """The same answer for every text (shared: the worker never mutates results)."""
        return [self._answer] * len(texts)


def load_predictor(settings: WorkerSettings, checkpoint: Path | None = None) -> NoopPredictor | Classifier:
    """The configured predictor, in this process (the model process calls it; so do tests and benches).

    Raises:
        CheckpointError: The checkpoint is missing, incomplete or cannot be loaded; says what to run.
    """
    if settings.model_backend == "noop":
        return NoopPredictor()
    from inference.checkpoint import resolve_checkpoint
    from inference.classifier import Classifier
    from inference.decision import Thresholds

    folder = resolve_checkpoint(checkpoint or settings.model_dir)
    overrides = settings.thresholds.model_dump(exclude_none=True)
    thresholds = Thresholds.load(folder / "thresholds.json").model_copy(update=overrides) if overrides else None
    return Classifier.load(
        folder,
        device=settings.device,
        batch_size=settings.batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        thresholds=thresholds,
        backend=settings.model_backend,
        threads=settings.torch_threads or len(os.sched_getaffinity(0)),  # affinity, unlike cpu_count
    )


def _preload(settings: WorkerSettings, checkpoint: Path | None) -> list[str]:
    """What the fork server imports once, so a restarted model process loads weights, not libraries: torch
    and transformers only when they serve (17 s of an ONNX model process's start on 2 cores otherwise).

    The fork server outlives model processes: a later checkpoint served on another backend imports its own.
    """
    from inference.checkpoint import CheckpointError, resolve_checkpoint
    from inference.classifier import resolve_backend

    if settings.model_backend == "noop":
        return _PRELOAD
    try:
        serving = resolve_backend(resolve_checkpoint(checkpoint or settings.model_dir), settings.model_backend,
                                  settings.device)
    except (CheckpointError, ValueError):
        return _PRELOAD  # the model process fails to load it and says why
    return [*_PRELOAD, "inference.torch_model"] if serving.backend == "torch" else _PRELOAD


# The executor's one thread (in the model process, or in the worker) keeps its predictor here.
_local = threading.local()


def _load(settings: WorkerSettings, checkpoint: Path | None, worker: int | None) -> None:
    """Executor initializer: load the model; a failure is kept and raised by every call, so it reaches the caller."""
    if worker is not None:
        # The worker owns shutdown: Ctrl-C or SIGTERM to the process group must not kill a call in flight.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        threading.Thread(target=_exit_with_worker, args=(worker,), name="triage-model-watch", daemon=True).start()
    try:
        _local.predictor, _local.error = load_predictor(settings, checkpoint), None
    except Exception as exc:  # noqa: BLE001 - raised again by _loaded_model/_predict, in the worker
        _local.predictor, _local.error = None, exc


def _exit_with_worker(worker: int) -> None:
    """Leave when the worker exits, even by SIGKILL; the fork server leaves once its last child has gone."""
    select.select([os.pidfd_open(worker)], [], [])
    os._exit(0)


def _loaded_model() -> tuple[str, dict[str, str]]:
    """The loaded model's version and what serves it (backend, device, precision, and why that one)."""
    if _local.error is not None:
        raise _local.error
    predictor = _local.predictor
    serving = NOOP_SERVING if isinstance(predictor, NoopPredictor) else predictor.serving.as_dict()
    return str(predictor.version), serving


def _predict(texts: list[str]) -> list[Triage]:
    if _local.error is not None:
        raise _local.error
    results: list[Triage] = _local.predictor.predict(texts)
    return results


class Engine:
    """One checkpoint in one executor: a model process, or a thread (``noop``, ``TRIAGE_MODEL_PROCESS=false``).

    Building one blocks until the model is loaded and raises what loading raised (``CheckpointError``).
    """

    def __init__(self, settings: WorkerSettings, checkpoint: Path | None) -> None:
        self.settings = settings
        self.checkpoint = checkpoint
        self._executor = self._spawn()
        self.version, self.serving = self._loaded()

    def _spawn(self) -> Executor:
        in_child = self.settings.model_process and self.settings.model_backend != "noop"
        args = (self.settings, self.checkpoint, os.getpid() if in_child else None)
        if not in_child:
            return ThreadPoolExecutor(1, thread_name_prefix="triage-model", initializer=_load, initargs=args)
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(_preload(self.settings, self.checkpoint))
        return ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_load, initargs=args)

    @property
    def pid(self) -> int | None:
        """The model process (None when the model runs on a thread)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return next(iter(processes), None)

    def _loaded(self) -> tuple[str, dict[str, str]]:
        """Wait for the model to load; on failure stop the executor and raise what loading raised."""
        try:
            return self._executor.submit(_loaded_model).result()
        except BaseException:
            self.close(kill=True)
            raise

    def submit(self, texts: list[str]) -> Future[list[Triage]]:
        return self._executor.submit(_predict, texts)

    def restart(self) -> None:
        """Kill the model process (a thread cannot be killed: it is abandoned) and load the checkpoint anew."""
        self.close(kill=True)
        self._executor = self._spawn()
        self.version, self.serving = self._loaded()

    def close(self, kill: bool = False) -> None:
        """Stop taking calls; the model process exits after the calls already queued (at once with ``kill``)."""
        if kill:
            for process in list((getattr(self._executor, "_processes", None) or {}).values()):
                process.kill()
        self._executor.shutdown(wait=False, cancel_futures=kill)


@dataclass
class _Request:
    engine: Engine
    texts: Sequence[str]
    result: asyncio.Future[list[Triage]]


class ModelClient:
    """Serves the current ``Engine``: merges waiting requests into one call, enforces deadlines, restarts."""

    def __init__(self, settings: WorkerSettings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ready = asyncio.Event()
        self.problem: str | None = None
        self._engine: Engine | None = None
        self._retired: list[Engine] = []
        self._waiting: list[_Request] = []
        self._runner: asyncio.Task[None] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("no model loaded yet; wait for ModelClient.ready")
        return self._engine

    @property
    def version(self) -> str | None:
        return self._engine.version if self._engine is not None else None

    async def load(self, checkpoint: Path | None) -> Engine:
        """Start an engine on ``checkpoint`` off the event loop and serve it from the next batch on."""
        engine = await asyncio.to_thread(Engine, self.settings, checkpoint)
        previous, self._engine = self._engine, engine
        if previous is not None:
            self._retired.append(previous)
            self._retire()
        self.metrics.on_model(engine.version, previous.version if previous is not None else None)
        log.info("model_process_started", pid=engine.pid, version=engine.version)
        self.ready.set()
        return engine

    async def predict(self, engine: Engine, texts: Sequence[str]) -> list[Triage]:
        """One ``Triage`` per text from ``engine``; raises ``ModelFailed`` for a fault of these texts."""
        loop = asyncio.get_running_loop()
        request = _Request(engine, texts, loop.create_future())
        self._waiting.append(request)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._drain())
        return await request.result

    def _next_group(self) -> list[_Request]:
        """The oldest request plus the following ones for the same engine, up to ``batch_size`` texts."""
        first = self._waiting[0]
        group: list[_Request] = []
        size = 0
        for request in list(self._waiting):
            if request.engine is not first.engine:
                continue
            if group and size + len(request.texts) > self.settings.batch_size:
                break
            group.append(request)
            size += len(request.texts)
            self._waiting.remove(request)
        return group

    async def _drain(self) -> None:
        while self._waiting:
            group = self._next_group()
            texts = [text for request in group for text in request.texts]
            try:
                results = await self._call(group[0].engine, texts)
            except ModelFailed as exc:
                for request in group:
                    if not request.result.done():
                        request.result.set_exception(exc)
                continue
            start = 0
            for request in group:
                if not request.result.done():
                    request.result.set_result(results[start : start + len(request.texts)])
                start += len(request.texts)
        self._retire()

    async def _call(self, engine: Engine, texts: list[str]) -> list[Triage]:
        """One call under the deadline; a dead or hung model process is restarted and the call retried once."""
        reason = ""
        for _ in range(2):
            started = time.perf_counter()
            try:
                results = await asyncio.wait_for(
                    asyncio.wrap_future(engine.submit(texts)), self.settings.model_call_timeout_s
                )
            except (BrokenExecutor, TimeoutError) as exc:
                reason = "timeout" if isinstance(exc, TimeoutError) else "died"
                self.metrics.model_restarts.labels(reason=reason).inc()
                log.error("model_call_failed", reason=reason, texts=len(texts), pid=engine.pid)
                await self._restart(engine, reason)
                continue
            except Exception as exc:  # noqa: BLE001 - the predictor's own error: a fault of these texts
                raise ModelFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
            finally:
                self.metrics.inference_seconds.observe(time.perf_counter() - started)
            if len(results) != len(texts):
                raise ModelFailed(f"model returned {len(results)} results for {len(texts)} texts")
            self.metrics.model_call_texts.observe(len(texts))
            return results
        raise ModelFailed(f"model process {'timed out' if reason == 'timeout' else 'died'} twice on this call")

    async def _restart(self, engine: Engine, reason: str) -> None:
        """Restart the model process until it loads, backing off; meanwhile ``problem`` says why it is down."""
        delay = 1.0
        self.problem = f"model process {reason}; restarting"
        while True:
            try:
                await asyncio.to_thread(engine.restart)
            except Exception as exc:  # noqa: BLE001 - the infrastructure's fault: wait for it, never fail tickets
                self.problem = f"model cannot be restarted: {type(exc).__name__}: {str(exc)[:200]}"
                log.error("model_restart_failed", error=type(exc).__name__, detail=str(exc)[:300], retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            self.problem = None
            log.info("model_restarted", reason=reason, pid=engine.pid)
            return

    def _retire(self) -> None:
        """Close replaced engines once no request waits for them."""
        for engine in list(self._retired):
            if not any(request.engine is engine for request in self._waiting):
                engine.close()
                self._retired.remove(engine)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for engine in [*self._retired, *([self._engine] if self._engine is not None else [])]:
            engine.close()
