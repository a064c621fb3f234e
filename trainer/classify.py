"""Offline batch classification: ``Ticket`` JSON lines in, ``EnrichedTicket`` JSON lines out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

import structlog

from inference.classifier import Classifier
from schemas.enums import ErrorCode
from schemas.messages import EnrichedTicket, Ticket
from schemas.validation import TicketRejected, decode_ticket

__all__ = ["ClassifyStats", "InvalidLine", "classify_lines", "classify_texts"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class InvalidLine:
    """A rejected input line: its number and reason code, never its text."""

    line: int
    code: ErrorCode
    ticket_id: str | None


@dataclass
class ClassifyStats:
    written: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)


def classify_lines(
    classifier: Classifier, lines: Iterable[str], out: TextIO, batch_size: int = 64
) -> ClassifyStats:
    """Classify JSON lines in batches, writing one ``EnrichedTicket`` per valid line in input order.

    Invalid lines are logged (line number, reason code, ticket id when readable) and skipped;
    blank lines are ignored.
    """
    stats = ClassifyStats()
    batch: list[Ticket] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            batch.append(decode_ticket(line.encode("utf-8", errors="surrogateescape")))
        except TicketRejected as exc:
            stats.invalid.append(InvalidLine(number, exc.info.code, exc.ticket_id))
            log.warning("ticket_invalid", line=number, code=exc.info.code.value, ticket_id=exc.ticket_id)
            continue
        if len(batch) >= batch_size:
            stats.written += _write(classifier, batch, out)
            batch = []
    stats.written += _write(classifier, batch, out)
    return stats


def classify_texts(classifier: Classifier, texts: Iterable[str]) -> Iterator[EnrichedTicket]:
    """Ad-hoc texts from the command line, numbered ``cli-1``, ``cli-2``, ..."""
    tickets = [Ticket(ticket_id=f"cli-{i}", text=text) for i, text in enumerate(texts, start=1)]
    for ticket, triage in zip(tickets, classifier.predict([t.text for t in tickets]), strict=True):
        yield EnrichedTicket.from_ticket(ticket, triage)


def _write(classifier: Classifier, batch: list[Ticket], out: TextIO) -> int:
    if not batch:
        return 0
    for ticket, triage in zip(batch, classifier.predict([t.text for t in batch]), strict=True):
        out.write(EnrichedTicket.from_ticket(ticket, triage).model_dump_json() + "\n")
    return len(batch)
