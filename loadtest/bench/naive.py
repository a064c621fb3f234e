"""The peer the batching benchmark is measured against: a naive aiokafka consumer, one ticket at a time.

It reads each ticket, classifies it alone with the checkpoint's torch fp32 weights (the same inference core,
batch of one), waits for its enriched record to be acknowledged, then takes the next. No micro-batches, no
cache, no routing: what a first version of the service would do, and what the issue's outside harness
compared the worker with.
"""

from __future__ import annotations

from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from inference.classifier import Classifier
from loadtest.broker import create_topics
from loadtest.settings import parse_brokers
from schemas.messages import EnrichedTicket
from schemas.topics import TopicSettings
from schemas.validation import decode_ticket

__all__ = ["consume_one_at_a_time"]


async def consume_one_at_a_time(brokers: str, topics: TopicSettings, expected: int, model_dir: Path) -> None:
    """Consume, classify and produce ticket by ticket, from the start of the input topic, ``expected`` times."""
    classifier = Classifier.load(model_dir, backend="torch", device="cpu", batch_size=1)
    create_topics(brokers, {topics.enriched: topics.partitions})
    consumer = AIOKafkaConsumer(bootstrap_servers=parse_brokers(brokers), enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=parse_brokers(brokers), acks="all")
    await consumer.start()
    await producer.start()
    try:
        partitions = [TopicPartition(topics.incoming, p) for p in range(topics.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        for _ in range(expected):
            record = await consumer.getone()
            ticket = decode_ticket(record.value)
            enriched = EnrichedTicket.from_ticket(ticket, classifier.predict([ticket.text])[0])
            await producer.send_and_wait(topics.enriched, enriched.model_dump_json().encode(), key=record.key)
    finally:
        await producer.stop()
        await consumer.stop()
