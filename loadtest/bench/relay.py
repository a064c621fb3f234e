"""The yardstick the issue quotes: a bare Faust relay with ``take(500)``, no schemas, cache, routing or model.

``python -m loadtest.bench.relay BROKERS INCOMING OUTGOING EXPECTED DONE_FILE`` copies every record of
INCOMING to OUTGOING (same key and value) and, once EXPECTED records are sent and flushed, writes DONE_FILE
(its Faust state goes to ``DONE_FILE.state``).
The no-op benchmark drains the same backlog through it and through the worker in one run, so the worker's
pipeline is reported as a ratio of plain Faust on the same machine at the same moment.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import faust
from faust.types import StreamT

__all__ = ["build_relay", "main"]

TAKE = 500
WITHIN_S = 0.01


def build_relay(brokers: str, incoming: str, outgoing: str, expected: int, done_file: Path) -> faust.App:
    """A Faust app whose one agent forwards batches of up to ``TAKE`` records."""
    app = faust.App(
        f"bench-relay-{incoming}",
        broker=f"kafka://{brokers}",
        datadir=str(done_file.with_name(done_file.name + ".state")),
        web_enabled=False,
        producer_acks=-1,
        topic_disable_leader=True,
    )
    source = app.topic(incoming, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    sink = app.topic(outgoing, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    sent = 0

    @app.agent(source)
    async def relay(stream: StreamT) -> None:
        nonlocal sent
        async for events in cast(faust.Stream, stream).take_events(TAKE, within=WITHIN_S):
            for event in events:
                await sink.send(key=event.key, value=event.value)
            sent += len(events)
            if sent >= expected and not done_file.exists():
                await app.producer.flush()
                done_file.write_text(str(sent), encoding="utf-8")

    return app


def main() -> None:
    brokers, incoming, outgoing, expected, done_file = sys.argv[1:6]
    app = build_relay(brokers, incoming, outgoing, int(expected), Path(done_file))
    sys.argv = [sys.argv[0], "worker", "--loglevel=warn"]
    app.main()


if __name__ == "__main__":
    main()
