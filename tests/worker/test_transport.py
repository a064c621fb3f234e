"""The consumer's fetch wait comes from the settings, not Faust's hard-coded 1.5 s."""

from __future__ import annotations

import asyncio

from worker.app import create_app
from worker.settings import WorkerSettings


def test_fetch_wait_setting_reaches_the_kafka_consumer() -> None:
    async def build() -> int:
        app = create_app(WorkerSettings(brokers="127.0.0.1:1", fetch_wait_ms=33))
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == 33
