"""The one model client: the checkpoint in its own process, calls with a deadline, restarts, merged batches.

A ``ProcessPoolExecutor(max_workers=1)`` on a forkserver context loads the checkpoint (the fork server imports the
libraries once, ``_preload``), so model ops never take the GIL from the event loop. Waiting requests merge into one
call, except a text retried alone. Faults, by whose they are: the predictor raised → ``ModelFailed`` (the texts');
the process died or missed ``model_call_timeout_s`` → restarted and retried; dead twice on one call → a canary text
decides: answered → ``ModelCrashed`` (the texts'), not → the model is down, and the call waits until it answers.
A process that cannot load (memory, folder gone, ``model_load_timeout_s``) is down too: ``problem`` (so ``/health``)
says why, and no ticket fails for it. A watchdog sees death, SIGSTOP or a call without CPU progress without traffic.
A batch keeps its engine open (``serving``); if that engine is down and replaced, it reruns (``EngineReplaced``).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import select
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from inference.noop import NoopPredictor
from schemas.messages import Triage
from worker.metrics import WorkerMetrics
from worker.settings import WorkerSettings

if TYPE_CHECKING:
    from inference.classifier import Classifier

__all__ = ["Engine", "EngineReplaced", "ModelClient", "ModelCrashed", "ModelFailed", "Predictor", "load_predictor"]

log = structlog.get_logger(__name__)

_PRELOAD = ["worker.model", "inference.classifier"]
_BACKOFF_MAX_S = 10.0
_WATCH_S = 0.5
_STUCK_S = 2.0  # a call this long without the model process using CPU makes it not ready
_CANARY = "I want to check my account balance"


class Predictor(Protocol):
    """What the model process runs: ``Classifier.predict(texts) -> list[Triage]``, or the no-op stand-in."""

    version: str

    def predict(self, texts: Sequence[str]) -> list[Triage]: ...


class ModelFailed(Exception):
    """The model failed on these texts (it raised, or its process died twice on them)."""


class ModelCrashed(ModelFailed):
    """The model process died twice on these texts while it answers a canary text: they kill it."""


class EngineReplaced(Exception):  # noqa: N818 - an event, not an error: the batch runs again
    """The batch's engine is down and a newer checkpoint replaced it: run the batch on the current engine."""


NOOP_SERVING = {"backend": "noop", "reason": "set explicitly: a constant answer without a model"}


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
        self.in_child = settings.model_process and settings.model_backend != "noop"
        self.users = 0  # batches serving from this engine (``ModelClient.serving``)
        self.generation = 0  # bumped by each restart
        self.closed = False
        self._executor = self._spawn()
        self.version, self.serving = self._loaded()

    def _spawn(self) -> Executor:
        args = (self.settings, self.checkpoint, os.getpid() if self.in_child else None)
        if not self.in_child:
            return ThreadPoolExecutor(1, thread_name_prefix="triage-model", initializer=_load, initargs=args)
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(_preload(self.settings, self.checkpoint))
        return ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_load, initargs=args)

    @property
    def pid(self) -> int | None:
        """The model process (None when the model runs on a thread)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return next(iter(processes), None)

    def process_state(self) -> tuple[str, int] | None:
        """The model process's state (``/proc``: R, S, T stopped, Z, X gone) and CPU ticks; None on a thread."""
        if not self.in_child:
            return None
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return "X", 0
        return fields[0], int(fields[11]) + int(fields[12])

    def _loaded(self) -> tuple[str, dict[str, str]]:
        """Wait for the model to load; on failure stop the executor and raise what loading raised."""
        limit = self.settings.model_load_timeout_s
        try:
            return self._executor.submit(_loaded_model).result(timeout=limit)
        except BaseException as exc:
            self._stop(kill=True)
            if isinstance(exc, TimeoutError):
                raise TimeoutError(f"the model process did not load {self.checkpoint or self.settings.model_dir} "
                                   f"within {limit:g} s (TRIAGE_MODEL_LOAD_TIMEOUT_S)") from None
            raise

    def submit(self, texts: list[str]) -> Future[list[Triage]]:
        """Raises ``BrokenExecutor`` when the model process is gone (a failed restart shut its executor down)."""
        try:
            return self._executor.submit(_predict, texts)
        except RuntimeError as exc:
            raise BrokenExecutor(str(exc)) from exc

    def restart(self) -> None:
        """Kill the model process (a thread cannot be killed: it is abandoned) and load the checkpoint anew."""
        self._stop(kill=True)
        self._executor = self._spawn()
        self.version, self.serving = self._loaded()
        self.generation += 1
        if self.closed:  # retired while it restarted: its new process must not outlive it
            self._stop(kill=True)

    def close(self, kill: bool = False) -> None:
        """Stop taking calls; the model process exits after the calls already queued (at once with ``kill``)."""
        self.closed = True
        self._stop(kill)

    def kill(self) -> None:
        """Kill the model process: calls in flight fail as if it died, and the next one restarts it."""
        for process in list((getattr(self._executor, "_processes", None) or {}).values()):
            process.kill()

    def _stop(self, kill: bool) -> None:
        if kill:
            self.kill()
        self._executor.shutdown(wait=False, cancel_futures=kill)


@dataclass
class _Request:
    engine: Engine
    texts: Sequence[str]
    result: asyncio.Future[list[Triage]]
    alone: bool


@dataclass
class _Died(Exception):  # noqa: N818 - internal signal: the model process died or missed its deadline
    reason: str
    generation: int


class ModelClient:
    """Serves the current ``Engine``: merges waiting requests into one call, enforces deadlines, restarts."""

    def __init__(self, settings: WorkerSettings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ready = asyncio.Event()
        self._down: str | None = None  # why the model cannot answer (restarting, dying on every call)
        self._stuck: str | None = None  # the watchdog's: the process is stopped or makes no progress in a call
        self._engine: Engine | None = None
        self._retired: list[Engine] = []
        self._waiting: list[_Request] = []
        self._runner: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._restarting = asyncio.Lock()
        self._busy = 0  # calls in flight

    @property
    def problem(self) -> str | None:
        """Why the model cannot serve right now (None while it can)."""
        return self._down or self._stuck

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("no model loaded yet; wait for ModelClient.ready")
        return self._engine

    @property
    def version(self) -> str | None:
        return self._engine.version if self._engine is not None else None

    @contextmanager
    def serving(self) -> Iterator[Engine]:
        """The current engine, kept open until the batch that took it is done."""
        engine = self.engine
        engine.users += 1
        try:
            yield engine
        finally:
            engine.users -= 1
            self._retire()

    async def load(self, checkpoint: Path | None) -> Engine:
        """Start an engine on ``checkpoint`` off the event loop and serve it from the next batch on."""
        engine = await asyncio.to_thread(Engine, self.settings, checkpoint)
        previous, self._engine = self._engine, engine
        self._down = self._stuck = None
        if previous is not None:
            self._retired.append(previous)
            self._retire()
        self.metrics.on_model(engine.version, previous.version if previous is not None else None)
        log.info("model_process_started", pid=engine.pid, version=engine.version)
        if self._watchdog is None and engine.in_child:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        self.ready.set()
        return engine

    async def predict(self, engine: Engine, texts: Sequence[str], alone: bool = False) -> list[Triage]:
        """One ``Triage`` per text from ``engine``; raises ``ModelFailed`` for a fault of these texts.

        ``alone``: never merged with other requests, so a failure is these texts' own.
        """
        loop = asyncio.get_running_loop()
        request = _Request(engine, texts, loop.create_future(), alone)
        self._waiting.append(request)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._drain())
        return await request.result

    def _next_group(self) -> list[_Request]:
        """The oldest request plus the following ones for the same engine, up to ``batch_size`` texts."""
        first = self._waiting[0]
        group, size = list[_Request](), 0
        for request in [first] if first.alone else list(self._waiting):
            if request.engine is not first.engine or request.alone is not first.alone:
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
            except (ModelFailed, EngineReplaced) as exc:
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
        """One call; a dead or hung model process is restarted and the call retried until the fault is placed."""
        deaths = 0
        while True:
            try:
                return await self._once(engine, texts)
            except _Died as died:
                deaths += 1
                await self._restart(engine, died.reason, died.generation)
                if deaths >= 2 and await self._answers_canary(engine):
                    raise ModelCrashed(f"model process {died.reason} twice on these {len(texts)} texts, "
                                       "and answers others") from None
                deaths = 0 if deaths >= 2 else deaths  # the model was down: these texts get a fresh start

    async def _once(self, engine: Engine, texts: list[str]) -> list[Triage]:
        """One call under the deadline; raises ``_Died`` when the process died or missed it."""
        async with self._restarting:  # never submit to an executor being replaced
            generation, self._busy = engine.generation, self._busy + 1
        started = time.perf_counter()
        try:
            call = asyncio.wrap_future(engine.submit(texts))
            results = await asyncio.wait_for(call, self.settings.model_call_timeout_s)
        except (BrokenExecutor, TimeoutError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "died"
            log.error("model_call_failed", reason=reason, texts=len(texts), pid=engine.pid)
            raise _Died(reason, generation) from None
        except Exception as exc:  # noqa: BLE001 - the predictor's own error: a fault of these texts
            raise ModelFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        finally:
            self._busy -= 1
            self.metrics.inference_seconds.observe(time.perf_counter() - started)
        if engine is self._engine:
            self._down = None  # it answered
        if len(results) != len(texts):
            raise ModelFailed(f"model returned {len(results)} results for {len(texts)} texts")
        self.metrics.model_call_texts.observe(len(texts))
        return results

    async def _answers_canary(self, engine: Engine) -> bool:
        """Whether the restarted model answers a canary text at once; if not, waits until it does."""
        delay, failed = 1.0, 0
        while True:
            try:
                await self._once(engine, [_CANARY])
                return failed == 0
            except _Died as died:
                failed += 1
                await self._restart(engine, died.reason, died.generation)
                self._down = f"model process {died.reason} on every call ({failed} canary calls); waiting"
                log.error("model_down", reason=died.reason, canary_calls=failed, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)

    async def _restart(self, engine: Engine, reason: str, generation: int) -> None:
        """Restart the model process until it loads, backing off; meanwhile ``problem`` says why it is down.

        Raises:
            EngineReplaced: A new checkpoint replaced this engine meanwhile.
        """
        delay = 1.0
        async with self._restarting:
            while engine.generation == generation:  # else restarted already by another caller
                if engine is not self._engine:
                    raise EngineReplaced(f"model {engine.version} was replaced while its process was down")
                self._down = self._down or f"model process {reason}; restarting"
                self.metrics.model_restarts.labels(reason=reason).inc()
                try:
                    await asyncio.to_thread(engine.restart)
                except Exception as exc:  # noqa: BLE001 - the infrastructure's fault: wait for it, never fail tickets
                    if engine is self._engine:
                        self._down = f"model cannot be restarted: {type(exc).__name__}: {str(exc)[:200]}"
                    log.error("model_restart_failed", error=type(exc).__name__, detail=str(exc)[:300], retry_in_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_MAX_S)
                    continue
                self._stuck = None
                log.info("model_restarted", reason=reason, pid=engine.pid)

    async def _watch(self) -> None:
        """Twice a second: a dead process (no call in flight) is restarted and checked with the canary; a stopped
        one, or one in a call without using CPU, makes ``problem`` say so and is killed after ``model_hang_s``."""
        since, last_cpu, pid = 0.0, -1, None
        while True:
            await asyncio.sleep(_WATCH_S)
            engine = self._engine
            state = None if engine is None or self._restarting.locked() else engine.process_state()
            if engine is None or state is None:
                continue
            if engine.pid != pid:  # a new process (restarted after a call's deadline): its CPU time is its own
                since, last_cpu, pid = 0.0, -1, engine.pid
            (letter, cpu), now = state, time.monotonic()
            if letter in "XZ" and not self._busy:
                self._down = "model process died; restarting"
                with suppress(EngineReplaced):
                    await self._restart(engine, "died", engine.generation)
                    await self._answers_canary(engine)
                since, last_cpu = 0.0, -1
                continue
            stopped, stalled = letter in "Tt", self._busy > 0 and cpu == last_cpu
            since, last_cpu = (since or now) if stopped or stalled else 0.0, cpu
            what = "stopped (SIGSTOP)" if stopped else "not progressing in a call"
            stuck = stopped or (stalled and now - since >= _STUCK_S)
            self._stuck = f"model process {what} for {now - since:.0f} s" if stuck else None
            if stuck and now - since >= self.settings.model_hang_s:
                log.error("model_hung", pid=engine.pid, state=letter, stuck_s=round(now - since, 1))
                engine.kill()
                since = 0.0

    def _retire(self) -> None:
        """Close replaced engines once no request waits for them and no batch serves from them."""
        for engine in list(self._retired):
            if engine.users == 0 and not any(request.engine is engine for request in self._waiting):
                engine.close()
                self._retired.remove(engine)

    def close(self) -> None:
        for task in filter(None, (self._runner, self._watchdog)):
            task.cancel()
        for engine in [*self._retired, *([self._engine] if self._engine is not None else [])]:
            engine.close()
