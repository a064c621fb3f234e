"""Where replayed tickets come from: a data folder's split or a Ticket JSONL file, each with its ground truth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from inference.errors import UserError
from schemas.enums import Priority
from schemas.messages import Ticket
from schemas.taxonomy import Taxonomy, load_taxonomy

__all__ = ["SourceError", "SourceRecord", "Truth", "load_source"]


class SourceError(UserError):
    """The replay source cannot be read; the message says what was tried and what to do."""


@dataclass(frozen=True)
class Truth:
    """The labels a ticket should get; carried in its metadata so the collector can score the worker."""

    intent: str
    category: str
    priority: Priority

    @classmethod
    def of(cls, intent: str | None, taxonomy: Taxonomy) -> Truth | None:
        """The taxonomy's labels for ``intent``; None for a ticket without one."""
        if intent is None:
            return None
        rule = taxonomy.rule(intent)
        return cls(intent, rule.category, rule.priority)


@dataclass(frozen=True)
class SourceRecord:
    """One replayable ticket body: its text, the fields to keep from a JSONL line, and its truth."""

    text: str
    truth: Truth | None
    fields: dict[str, object]


def _from_jsonl(path: Path, taxonomy: Taxonomy) -> list[SourceRecord]:
    """Each line is a Ticket; ``metadata.intent`` (when present) is its ground truth."""
    if not path.is_file():
        raise SourceError(f"no replay source at {path}: pass --source train, --source test or a Ticket JSONL file")
    records = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ticket = Ticket.model_validate(json.loads(line))
        except ValueError as exc:  # invalid JSON, or pydantic's ValidationError
            raise SourceError(f"{path}:{line_no}: not a valid Ticket ({str(exc).splitlines()[0]})") from exc
        intent = ticket.metadata.get("intent")
        if intent is not None and intent not in taxonomy.intents:
            raise SourceError(f"{path}:{line_no}: metadata.intent {intent!r} is not a label of the taxonomy")
        fields = ticket.model_dump(mode="json", exclude={"ticket_id", "text"}, exclude_none=True)
        records.append(SourceRecord(ticket.text, Truth.of(intent, taxonomy), fields))
    if not records:
        raise SourceError(f"{path} holds no tickets")
    return records


def load_source(source: str, data_dir: Path | None, hub_dataset: str = "PolyAI/banking77") -> list[SourceRecord]:
    """The records of ``source``: ``train`` or ``test`` (a split of the data folder ``data_dir``, else Banking77
    from the hub) or the path of a Ticket JSONL file (its truth checked against ``data_dir``'s taxonomy, else the
    default one); a ``UserError`` names the source tried and how to fix it."""
    from trainer.data import load_data

    if source not in ("train", "test"):
        taxonomy = load_data(data_dir, hub_dataset).taxonomy if data_dir else load_taxonomy()
        return _from_jsonl(Path(source), taxonomy)
    data = load_data(data_dir, hub_dataset)
    taxonomy = data.taxonomy
    split = data.train if source == "train" else data.test
    pairs = zip(split.texts, split.intents, strict=True)
    return [SourceRecord(text, Truth.of(intent, taxonomy), {}) for text, intent in pairs]
