"""The peer the batching benchmark is measured against: a naive aiokafka consumer, one ticket at a time.

``python -m loadtest.bench.naive BROKERS INCOMING OUTGOING EXPECTED DONE_FILE MODEL_DIR`` reads each ticket
of INCOMING, classifies it alone with the checkpoint's torch fp32 weights (the same inference core, batch of
one), waits for its enriched record to be acknowledged on OUTGOING, then takes the next; once EXPECTED
records are out it writes DONE_FILE. No micro-batches, no cache, no routing: what a first version of the
service would do, and what the issue's outside harness compared the worker with.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.messages import EnrichedTicket
from schemas.validation import decode_ticket
from triage.classifier import Classifier

__all__ = ["main", "relay_one_at_a_time"]


async def relay_one_at_a_time(
    brokers: str, incoming: str, outgoing: str, expected: int, done_file: Path, classifier: Classifier
) -> int:
    """Consume, classify and produce ticket by ticket until ``expected`` are out; returns how many."""
    consumer = AIOKafkaConsumer(
        incoming, bootstrap_servers=brokers.split(","), group_id=f"naive-{incoming}", auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=brokers.split(","), acks="all")
    await consumer.start()
    await producer.start()
    sent = 0
    try:
        while sent < expected:
            record = await consumer.getone()
            ticket = decode_ticket(record.value)
            enriched = EnrichedTicket.from_ticket(ticket, classifier.predict([ticket.text])[0])
            await producer.send_and_wait(outgoing, enriched.model_dump_json().encode(), key=record.key)
            sent += 1
    finally:
        await producer.stop()
        await consumer.stop()
    done_file.write_text(str(sent), encoding="utf-8")
    return sent


def main() -> None:
    brokers, incoming, outgoing, expected, done_file, model_dir = sys.argv[1:7]
    classifier = Classifier.load(model_dir, backend="torch", device="cpu", batch_size=1)
    asyncio.run(relay_one_at_a_time(brokers, incoming, outgoing, int(expected), Path(done_file), classifier))


if __name__ == "__main__":
    main()
