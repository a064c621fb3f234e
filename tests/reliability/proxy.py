"""TCP proxies that inject the network and broker faults of the reliability scenarios.

Put one between a client (the worker, a producer) and a server (Redis, the broker). ``FaultProxy.cut()``
resets every open connection and refuses new ones until ``restore()``; from the client's side the server has
crashed. ``KafkaProxy`` also reads the Kafka frames clients send and lets a scenario hold a request back or
answer it in the broker's place (``ProduceHold``, ``RefuseLargeProduce``, ``RefuseInvalidRecord``,
``StatedTopicLimits``). Both run
their own event loop in a thread, so sync tests and async tests drive them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka.protocol import admin as admin_api
from aiokafka.protocol import produce as produce_api
from aiokafka.record.memory_records import MemoryRecords

from loadtest.broker import free_port

__all__ = [
    "INVALID_RECORD", "MESSAGE_TOO_LARGE", "FaultProxy", "KafkaProxy", "KafkaRequest", "OnRequest", "ProduceHold",
    "RefuseInvalidRecord", "RefuseLargeProduce", "StatedTopicLimits",
]

_CHUNK = 256 * 1024
PRODUCE = 0
DESCRIBE_CONFIGS = 32
KAFKA_DEFAULT_LIMIT = 1_048_588
"""Apache Kafka's default ``max.message.bytes``."""
MESSAGE_TOO_LARGE = 10
"""Kafka's error code for a record batch over the broker's ``max.message.bytes`` (not retriable)."""
INVALID_RECORD = 87
"""Kafka's error code for a record the broker's validation refuses (not retriable; unknown to aiokafka)."""


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
            await self._relay(client_r, client_w, server_r, server_w)
        finally:
            for writer in (client_w, server_w):
                self._live.discard(writer)
                writer.transport.abort()

    async def _relay(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> None:
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

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


@dataclass(frozen=True)
class KafkaRequest:
    """One request frame of a client: the request header's fields and the body after it."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: bytes

    @classmethod
    def parse(cls, frame: bytes) -> KafkaRequest:
        api_key, api_version, correlation_id, id_length = struct.unpack_from(">hhih", frame)
        client_id = None if id_length < 0 else frame[10 : 10 + id_length].decode("utf-8", "replace")
        return cls(api_key, api_version, correlation_id, client_id, frame[10 + max(id_length, 0) :])

    def produce(self) -> Any | None:
        """A Produce request's body, decoded; None for another request or a version this proxy does not decode.

        aiokafka (the worker) sends v3-v8, whose layout ``aiokafka.protocol`` knows; kafka-python (the replay tool)
        sends the flexible v9+, which the hooks leave alone.
        """
        if self.api_key != PRODUCE or self.api_version not in _PARTITION_FIELDS:
            return None
        return getattr(produce_api, f"ProduceRequest_v{self.api_version}").decode(self.body)

    def expects_response(self) -> bool:
        """False only for a Produce with ``acks=0``, which the broker never answers."""
        if self.api_key != PRODUCE:
            return True
        if self.api_version <= 8:  # after an int16-length transactional id
            (length,) = struct.unpack_from(">h", self.body)
            at = 2 + max(length, 0)
        else:  # flexible: after the header's tagged fields (a count, 0) and a varint-length transactional id
            assert self.body[0] == 0, "tagged fields in a Produce request header"
            length, at = _varint(self.body, 1)
            at += max(length - 1, 0)
        (acks,) = struct.unpack_from(">h", self.body, at)
        return bool(acks)


OnRequest = Callable[[KafkaRequest], Awaitable[bytes | None]]
"""A scenario's hook: may wait before the request goes on (None), or return the response frame to answer with."""


class KafkaProxy(FaultProxy):
    """A ``FaultProxy`` that reads each Kafka request frame and passes it to ``on_request`` first.

    Clients pipeline requests and match responses by order, so responses go back in request order whether
    the broker or the hook answered, and a request held by the hook holds back the ones after it on the same
    connection, as a slow broker would.
    """

    def __init__(self, upstream_host: str, upstream_port: int, on_request: OnRequest) -> None:
        super().__init__(upstream_host, upstream_port)
        self.on_request = on_request

    async def _relay(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> None:
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[asyncio.Future[bytes]] = asyncio.Queue()  # one per request, in request order
        from_broker: deque[asyncio.Future[bytes]] = deque()

        async def requests() -> None:
            while (frame := await _read_frame(client_r)) is not None:
                request = KafkaRequest.parse(frame)
                reply: asyncio.Future[bytes] = loop.create_future()
                if request.expects_response():
                    replies.put_nowait(reply)
                answer = await self.on_request(request)
                if answer is not None:
                    reply.set_result(answer)
                    continue
                if request.expects_response():
                    from_broker.append(reply)
                server_w.write(_framed(frame))
                await server_w.drain()

        async def responses() -> None:
            while (frame := await _read_frame(server_r)) is not None:
                from_broker.popleft().set_result(frame)

        async def send_back() -> None:
            while True:
                client_w.write(_framed(await (await replies.get())))
                await client_w.drain()

        tasks = [loop.create_task(job()) for job in (requests, responses, send_back)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:  # a link that went away ends the connection; a fault of the proxy is raised (logged)
            if not isinstance(task.exception(), OSError | None):
                task.result()


class ProduceHold:
    """``on_request`` hook: holds every ``every``-th Produce request to ``topics`` for ``hold_s`` seconds.

    While one is held, ``held`` names the keys of its records: outputs the broker has not written, so the
    producer cannot have had them acknowledged.
    """

    def __init__(self, topics: Collection[str], every: int, hold_s: float) -> None:
        self.topics = set(topics)
        self.every = every
        self.hold_s = hold_s
        self.requests = 0
        self.holds = 0
        self.held: frozenset[bytes] = frozenset()

    async def __call__(self, request: KafkaRequest) -> bytes | None:
        produce = request.produce()
        if produce is None or not {topic for topic, _ in produce.topics} <= self.topics:
            return None
        self.requests += 1
        if self.requests % self.every:
            return None
        self.holds += 1
        self.held = frozenset(key for _, _, data in _batches(produce) for key in _keys(data))
        try:
            await asyncio.sleep(self.hold_s)
        finally:
            self.held = frozenset()
        return None


class RefuseLargeProduce:
    """``on_request`` hook: a broker whose ``max.message.bytes`` is ``limit``, for Produce requests to ``topics``.

    A request carrying any record batch over the limit is answered ``MESSAGE_TOO_LARGE`` for every partition
    in it (nothing is written), as Apache Kafka answers a batch it refuses; the others go to the broker.
    """

    def __init__(self, topics: Collection[str], limit: int) -> None:
        self.topics = set(topics)
        self.limit = limit
        self.refused: list[bytes] = []

    async def __call__(self, request: KafkaRequest) -> bytes | None:
        produce = request.produce()
        if produce is None:
            return None
        batches = _batches(produce)
        if not {topic for topic, _, _ in batches} <= self.topics or all(len(d) <= self.limit for *_, d in batches):
            return None
        self.refused.extend(key for *_, data in batches for key in _keys(data))
        return _refuse(request, produce, MESSAGE_TOO_LARGE, f"over {self.limit} bytes")


class RefuseInvalidRecord:
    """``on_request`` hook: a broker whose record validation refuses the records keyed ``keys`` on ``topics``.

    A Produce request carrying one is answered ``INVALID_RECORD`` for every partition in it (nothing is written),
    as Apache Kafka answers a batch failing e.g. compaction's key check; the others go to the broker.
    """

    def __init__(self, topics: Collection[str], keys: Collection[bytes]) -> None:
        self.topics = set(topics)
        self.keys = set(keys)
        self.refused: list[bytes] = []

    async def __call__(self, request: KafkaRequest) -> bytes | None:
        produce = request.produce()
        if produce is None:
            return None
        keys = {key for topic, _, data in _batches(produce) if topic in self.topics for key in _keys(data)}
        if not keys & self.keys:
            return None
        self.refused.extend(keys)
        return _refuse(request, produce, INVALID_RECORD, "refused by the broker's record validation")


class StatedTopicLimits:
    """``on_request`` hook: a broker that states each topic's ``max.message.bytes`` (DescribeConfigs v0-v2), ``limits``
    for some topics and Kafka's default for the rest, as Apache Kafka does (Tansu cannot answer DescribeConfigs).

    It only states them: ``largest`` records the largest record batch produced to each limited topic, for a test
    to check that nothing over the limit was sent.
    """

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self.described = 0
        self.largest: dict[str, int] = {}

    async def __call__(self, request: KafkaRequest) -> bytes | None:
        if request.api_key == DESCRIBE_CONFIGS:
            return self._describe(request)
        produce = request.produce()
        for topic, _, data in _batches(produce) if produce is not None else []:
            if topic in self.limits:
                self.largest[topic] = max(self.largest.get(topic, 0), len(data))
        return None

    def _describe(self, request: KafkaRequest) -> bytes:
        version = request.api_version
        asked = getattr(admin_api, f"DescribeConfigsRequest_v{version}").decode(request.body)
        answers = []
        for resource_type, name, _ in asked.resources:
            value = str(self.limits.get(name, KAFKA_DEFAULT_LIMIT))
            # v0: is_default; v1+: config_source (1: a topic's own setting) and no synonyms
            entry: tuple[object, ...] = ("max.message.bytes", value, False, False, False) if version == 0 else (
                "max.message.bytes", value, False, 1, False, [])
            answers.append((0, None, resource_type, name, [entry]))
        self.described += 1
        response = getattr(admin_api, f"DescribeConfigsResponse_v{version}")(0, answers)
        return struct.pack(">i", request.correlation_id) + response.encode()


def _refuse(request: KafkaRequest, produce: Any, code: int, message: str) -> bytes:
    """The broker's answer refusing every record batch of a Produce request with ``code``."""
    partitions: dict[str, list[tuple[object, ...]]] = {}
    for topic, partition, _ in _batches(produce):
        answer: tuple[object, ...] = (partition, code, -1, -1, -1, [], message)
        partitions.setdefault(topic, []).append(answer[: _PARTITION_FIELDS[request.api_version]])
    response = produce.RESPONSE_TYPE(list(partitions.items()), 0)
    return struct.pack(">i", request.correlation_id) + response.encode()


_PARTITION_FIELDS = {3: 4, 4: 4, 5: 5, 6: 5, 7: 5, 8: 7}
"""Fields of a partition's answer in ProduceResponse v3-v8 (v5 adds log_start_offset, v8 the record errors)."""


def _batches(produce: Any) -> list[tuple[str, int, bytes]]:
    return [(topic, partition, data) for topic, partitions in produce.topics for partition, data in partitions]


def _keys(data: bytes) -> list[bytes]:
    """Keys of the records in a Produce request's record batches (decompressed as the broker would)."""
    records, keys = MemoryRecords(data), list[bytes]()
    while (batch := records.next_batch()) is not None:
        keys.extend(record.key for record in batch if record.key is not None)
    return keys


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """An unsigned varint at ``at``: its value and where the next field starts."""
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One size-prefixed Kafka frame without its size; None at the end of the stream."""
    try:
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None


def _framed(frame: bytes) -> bytes:
    return struct.pack(">i", len(frame)) + frame
