"""Dead letters: a message that cannot be triaged goes to its own topic with the raw payload and the reason."""

from __future__ import annotations

from schemas.messages import DeadLetter, ErrorInfo
from worker.records import InRecord, OutRecord
from worker.routing import JSON

__all__ = ["dead_letter_record"]


def dead_letter_record(
    record: InRecord, error: ErrorInfo, topic: str, *, ticket_id: str | None, max_payload_bytes: int
) -> OutRecord:
    """Wrap a rejected message; keyed by its ticket id when one was readable, else by its original key."""
    letter = DeadLetter.build(
        record.value,
        error,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        ticket_id=ticket_id,
        max_payload_bytes=max_payload_bytes,
    )
    key = ticket_id.encode() if ticket_id is not None else record.key
    headers = [("error_code", error.code.value.encode()), ("content-type", JSON)]
    return OutRecord(topic, key, letter.model_dump_json().encode(), headers, record)
