"""Back-fill the feedback topic from a ticketing tool's CSV export: one message per valid row, keyed by ticket id."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from schemas.feedback import Feedback, encode_feedback

__all__ = ["FEEDBACK_COLUMNS", "RowProblem", "read_feedback_csv", "send_feedback"]

FEEDBACK_COLUMNS = ("ticket_id", "label", "category", "priority", "text", "agent", "closed_at")
"""Columns read from the export; empty cells are left out, other columns ignored."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def read_feedback_csv(path: Path) -> Iterator[Feedback | RowProblem]:
    """Each data row as a ``Feedback``, or the problem that keeps it out (line numbers count the header as 1)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if "ticket_id" not in (reader.fieldnames or []):
            raise ValueError(f"{path} has no ticket_id column (columns: {', '.join(reader.fieldnames or [])}); "
                             f"expected {', '.join(FEEDBACK_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            values = {k: v.strip() for k in FEEDBACK_COLUMNS if (v := row.get(k)) is not None and v.strip()}
            try:
                yield Feedback.model_validate(values)
            except ValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(p) for p in first["loc"]) or "row"
                yield RowProblem(line, f"{where}: {first['msg']}")


def send_feedback(bootstrap: str, topic: str, messages: list[Feedback]) -> int:
    """Produce every message (acks from all in-sync replicas) and wait for each; returns how many were sent."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, client_id="triage-feedback")
    try:
        futures = [producer.send(topic, key=m.ticket_id.encode("utf-8"), value=encode_feedback(m)) for m in messages]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return len(messages)
