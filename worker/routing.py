"""The records one input becomes: a triaged ticket on every topic it belongs on, or its dead letter."""

from __future__ import annotations

from pathlib import Path

from schemas.enums import Priority
from schemas.messages import DeadLetter, EnrichedTicket, ErrorInfo, Ticket, Triage
from schemas.taxonomy import load_taxonomy
from schemas.topics import TopicSettings
from worker.records import Headers, InRecord, OutRecord

__all__ = [
    "JSON", "dead_letter_record", "destinations", "enriched_records", "enriched_value", "routing_headers",
    "served_categories",
]

JSON = b"application/json"


def served_categories(checkpoint: Path | None) -> tuple[str, ...]:
    """The categories, so the route topics, of the checkpoint folder (or ``latest`` link) that serves.

    None (the no-op backend, which serves no checkpoint) gives the default taxonomy's.

    Raises:
        OSError, ValueError: The folder has no readable ``taxonomy.csv``: it cannot serve either.
    """
    if checkpoint is None:
        return load_taxonomy().categories
    return load_taxonomy(checkpoint.resolve() / "taxonomy.csv").categories


def destinations(triage: Triage, topics: TopicSettings) -> list[str]:
    """enriched always, the category's route always, oncall when High, review when flagged."""
    out = [topics.enriched, topics.route(triage.category)]
    if triage.priority is Priority.HIGH:
        out.append(topics.oncall)
    if triage.needs_review:
        out.append(topics.review)
    return out


def routing_headers(triage: Triage) -> Headers:
    """Headers consumers can filter on without parsing the value."""
    return [
        ("model_version", triage.model_version.encode()),
        ("category", triage.category.encode()),
        ("priority", triage.priority.value.encode()),
        ("content-type", JSON),
    ]


def enriched_value(ticket: Ticket, triage: Triage, triage_json: bytes | None = None) -> bytes:
    """``EnrichedTicket`` JSON: the validated ticket's JSON with ``"triage"`` appended.

    Same document as ``EnrichedTicket.from_ticket(ticket, triage).model_dump_json()`` without validating
    and normalising the ticket a second time (a third of the per-ticket cost of a no-op pipeline).
    ``triage_json`` (the triage as published before) is spliced in verbatim, so a replayed ticket's record
    is byte-identical: the ticket part is re-serialised deterministically from the same input.
    """
    if ticket.model_extra and "triage" in ticket.model_extra:
        return EnrichedTicket.from_ticket(ticket, triage).model_dump_json().encode()
    body = ticket.model_dump_json().encode()
    return body[:-1] + b',"triage":' + (triage_json or triage.model_dump_json().encode()) + b"}"


def enriched_records(
    ticket: Ticket, triage: Triage, topics: TopicSettings, source: InRecord, triage_json: bytes | None = None
) -> list[OutRecord]:
    """The same enriched JSON on every destination topic, keyed by ``ticket_id`` so a ticket keeps order."""
    value = enriched_value(ticket, triage, triage_json)
    key = ticket.ticket_id.encode()
    headers = routing_headers(triage)
    return [OutRecord(topic, key, value, headers, source) for topic in destinations(triage, topics)]


def dead_letter_record(
    record: InRecord, error: ErrorInfo, topic: str, *, ticket_id: str | None, max_payload_bytes: int
) -> OutRecord:
    """A message that cannot be triaged, with its raw payload and the reason; keyed by its ticket id when one
    was readable, else by its original key."""
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
