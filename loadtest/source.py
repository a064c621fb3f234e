"""Where replayed tickets come from: a Banking77 split or a Ticket JSONL file, each with its ground truth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from schemas.enums import Category, Priority
from schemas.messages import Ticket
from schemas.taxonomy import Taxonomy, load_taxonomy

__all__ = ["SPLITS", "SourceError", "SourceRecord", "Truth", "load_source"]

SPLITS = ("train", "test")


class SourceError(RuntimeError):
    """The replay source cannot be read; the message says what was tried and what to do."""


@dataclass(frozen=True)
class Truth:
    """The labels a ticket should get; carried in its metadata so the collector can score the worker."""

    intent: str
    category: Category
    priority: Priority

    def as_json(self) -> dict[str, str]:
        return {"intent": self.intent, "category": self.category.value, "priority": self.priority.value}


@dataclass(frozen=True)
class SourceRecord:
    """One replayable ticket body: its text, the fields to keep from a JSONL line, and its truth."""

    text: str
    truth: Truth | None
    fields: dict[str, object]


def _truth(intent: str | None, taxonomy: Taxonomy) -> Truth | None:
    if intent is None:
        return None
    rule = taxonomy.rule(intent)
    return Truth(intent=intent, category=rule.category, priority=rule.priority)


def _from_banking77(split: str, data_dir: Path | None, hub_dataset: str, taxonomy: Taxonomy) -> list[SourceRecord]:
    from trainer.data import DataNotFoundError, load_banking77

    try:
        data = load_banking77(data_dir, hub_dataset, taxonomy)
    except DataNotFoundError as exc:
        raise SourceError(str(exc)) from exc
    chosen = data.train if split == "train" else data.test
    pairs = zip(chosen.texts, chosen.intents, strict=True)
    return [SourceRecord(text, _truth(intent, taxonomy), {}) for text, intent in pairs]


def _from_jsonl(path: Path, taxonomy: Taxonomy) -> list[SourceRecord]:
    """Each line is a Ticket; ``metadata.intent`` (when present) is its ground truth."""
    if not path.is_file():
        raise SourceError(f"no replay source at {path}: pass --source train, --source test or a Ticket JSONL file")
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                ticket = Ticket.model_validate(json.loads(line))
            except (ValueError, ValidationError) as exc:
                raise SourceError(f"{path}:{line_no}: not a valid Ticket ({str(exc).splitlines()[0]})") from exc
            intent = ticket.metadata.get("intent")
            if intent is not None and intent not in taxonomy.intents:
                raise SourceError(f"{path}:{line_no}: metadata.intent {intent!r} is not a Banking77 intent")
            fields = ticket.model_dump(mode="json", exclude={"ticket_id", "text"}, exclude_none=True)
            records.append(SourceRecord(ticket.text, _truth(intent, taxonomy), fields))
    if not records:
        raise SourceError(f"{path} holds no tickets")
    return records


def load_source(source: str, data_dir: Path | None, hub_dataset: str = "PolyAI/banking77") -> list[SourceRecord]:
    """The records of ``source``: ``train`` or ``test`` (a Banking77 split from ``data_dir``, else the hub) or the
    path of a Ticket JSONL file.

    Raises:
        SourceError: Naming the source tried and how to fix it.
    """
    taxonomy = load_taxonomy()
    if source in SPLITS:
        return _from_banking77(source, data_dir, hub_dataset, taxonomy)
    return _from_jsonl(Path(source), taxonomy)
