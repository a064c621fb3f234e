"""Create the output topics at start, through Faust's producer (so SSL/SASL settings apply)."""

from __future__ import annotations

import faust
import structlog

from worker.settings import TopicSettings

__all__ = ["ensure_output_topics"]

log = structlog.get_logger(__name__)


async def ensure_output_topics(app: faust.App, topics: TopicSettings) -> None:
    """Create every output topic that does not exist yet; existing topics are left as they are.

    The incoming topic is declared ``internal`` on the agent, so Faust creates it before subscribing.
    """
    producer = app.producer
    await producer.maybe_start()
    for name in topics.outputs():
        await producer.create_topic(name, topics.partitions, topics.replication_factor)
    log.info("topics_ready", topics=topics.outputs(), partitions=topics.partitions)
