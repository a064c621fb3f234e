"""The model in a child process, so a forward pass never waits for the event loop's GIL (and vice versa).

In one process, every torch op of a forward pass re-takes the GIL from the event loop and Faust's
consumer thread; on a busy 2-core box that made a model call about twice as slow as the same call alone.
The child is forked from a fork server that has only imported torch and transformers (never from the worker,
which runs Kafka and event-loop threads), so a hot reload or a restart after a crash pays for loading the
weights, not for those imports again. It serves one call at a time over a pipe and exits when the pipe
closes; the fork server exits with the worker too, so neither outlives it, even after SIGKILL.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from schemas.messages import Triage
from worker.settings import WorkerSettings

__all__ = ["ModelProcessDied", "ProcessPredictor"]

log = structlog.get_logger(__name__)

_PRELOAD = ["worker.model_process", "triage.classifier"]


class ModelProcessDied(RuntimeError):
    """The child serving the model exited during a call (killed, out of memory, crashed)."""


class ProcessPredictor:
    """A ``Predictor`` whose model lives in its own process; a dead child is restarted on the next call.

    Loading happens in the constructor, so a bad checkpoint raises here (``CheckpointError``) as it would
    in process. Calls are serialised; the child is stopped when this object is closed or collected.
    """

    def __init__(self, settings: WorkerSettings, checkpoint: Path | None = None) -> None:
        self._settings = settings
        self._checkpoint = checkpoint
        self._lock = threading.Lock()
        self._conn, self._process = self._spawn()
        self._finalizer = weakref.finalize(self, _stop_later, self._conn, self._process)

    def _spawn(self) -> tuple[Connection, Any]:
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        conn, child_conn = context.Pipe()
        process = context.Process(
            target=_serve, args=(child_conn, self._settings, self._checkpoint), name="triage-model", daemon=True
        )
        process.start()
        child_conn.close()
        try:
            self.version: str = _reply(conn)
        except BaseException:
            _stop(conn, process)
            raise
        log.info("model_process_started", pid=process.pid, version=self.version)
        return conn, process

    def predict(self, texts: Sequence[str]) -> list[Triage]:
        """One ``Triage`` per text, computed in the child; restarts a child found dead and tries once more."""
        with self._lock:
            try:
                return self._call(list(texts))
            except ModelProcessDied:
                log.error("model_process_died", pid=self._process.pid, exitcode=self._process.exitcode)
                self._finalizer.detach()
                _stop(self._conn, self._process)
                self._conn, self._process = self._spawn()
                self._finalizer = weakref.finalize(self, _stop_later, self._conn, self._process)
                return self._call(list(texts))

    def _call(self, texts: list[str]) -> list[Triage]:
        try:
            self._conn.send(texts)
        except OSError as exc:
            raise ModelProcessDied("model process is gone") from exc
        result: list[Triage] = _reply(self._conn)
        return result

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def close(self) -> None:
        """Stop the child and wait for it (when collected instead, e.g. after a hot reload, it is not waited for)."""
        if self._finalizer.detach() is not None:
            _stop(self._conn, self._process)


def _reply(conn: Connection) -> Any:
    """The child's answer to the last request; re-raises the child's exception here."""
    try:
        ok, payload = conn.recv()
    except (EOFError, OSError) as exc:
        raise ModelProcessDied("model process exited during a call") from exc
    if not ok:
        raise payload
    return payload


def _stop_later(conn: Connection, process: Any) -> None:
    """Close the pipe now (the child exits on its own) and reap the child off the calling thread."""
    conn.close()
    threading.Thread(target=_stop, args=(conn, process), name="triage-model-reaper", daemon=True).start()


def _stop(conn: Connection, process: Any) -> None:
    conn.close()
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join(timeout=5)


def _serve(conn: Connection, settings: WorkerSettings, checkpoint: Path | None) -> None:
    """Child main: load the model, then answer one request at a time until the worker closes the pipe."""
    # The worker owns shutdown: Ctrl-C or SIGTERM to the process group must not kill a call in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from worker.inference import configure_torch, load_predictor

    try:
        configure_torch(settings)
        predictor = load_predictor(settings.model_copy(update={"model_process": False}), checkpoint)
    except Exception as exc:  # noqa: BLE001 - sent to the worker, which raises it where it asked for the model
        _send_error(conn, exc)
        return
    conn.send((True, predictor.version))
    while True:
        try:
            texts = conn.recv()
        except (EOFError, OSError):
            return
        try:
            result = predictor.predict(texts)
        except Exception as exc:  # noqa: BLE001 - a failed call fails that batch only, as in process
            _send_error(conn, exc)
            continue
        conn.send((True, result))


def _send_error(conn: Connection, exc: Exception) -> None:
    """Send the exception itself when it pickles, else its type and message."""
    try:
        conn.send((False, exc))
    except Exception:  # noqa: BLE001 - e.g. an exception type whose constructor takes other arguments
        conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
