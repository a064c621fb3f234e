"""A TCP proxy that can cut a live link: the network fault the reliability scenarios inject.

Put it between a client (the worker, a producer) and a server (Redis, the broker). ``cut()`` resets every
open connection and refuses new ones until ``restore()``; from the client's side the server has crashed.
It runs its own event loop in a thread, so sync tests and async tests drive it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from triage.broker import free_port

__all__ = ["FaultProxy"]

_CHUNK = 256 * 1024


class FaultProxy:
    """Forward ``127.0.0.1:port`` to ``upstream``; cut and restore the link on demand."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.connections = 0
        self.resets = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{self.port}", daemon=True)
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._server is None

    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def cut(self) -> None:
        """Reset every open connection (RST, like a crashed host) and refuse new ones."""
        self._run(self._cut())

    def restore(self) -> None:
        """Listen again on the same port; clients that retry get through."""
        self._run(self._listen())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._run(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._live):
            self.resets += 1
            writer.transport.abort()
        self._live.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._server is None:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        self._live.update((client_w, server_w))
        try:
            await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
        finally:
            for writer in (client_w, server_w):
                self._live.discard(writer)
                writer.transport.abort()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until either side goes away; then end the other way too."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
