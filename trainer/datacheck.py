"""The data contract: read a team's ticket folder and list every problem by file and line, with its fix.

A folder holds ``train.csv`` (optional ``validation.csv`` and ``test.csv``; ``.jsonl`` files with the same
fields are read too) with a ``text`` column and either

- ``label`` (a fine-grained label, like an intent) and a ``taxonomy.csv`` with ``label,category,priority``
  (optional ``rationale``); labels that are all in the default taxonomy may leave it out (Banking77), or
- ``category`` and ``priority`` on every ticket: the labels are then the (category, priority) pairs.

Banking77's published files name their intent column ``category`` with no ``priority``: such a file is read
as labels. ``read_folder`` never drops a row: errors stop training (``trainer.data``), warnings are reported.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from schemas.enums import Priority
from schemas.messages import MAX_TEXT_CHARS, normalise_text
from schemas.taxonomy import (
    DEFAULT_OUT_OF_SCOPE,
    OUT_OF_SCOPE_LABEL,
    TAXONOMY_FILE,
    IntentRule,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
)

__all__ = [
    "LONG_TEXT_CHARS",
    "MIN_TRAIN_EXAMPLES",
    "MIN_TUNE_EXAMPLES",
    "SPLITS",
    "Finding",
    "FolderContents",
    "Row",
    "pair_label",
    "read_folder",
]

SPLITS = ("train", "validation", "test")
MIN_TRAIN_EXAMPLES = 5
"""Fewest training tickets of a label: fewer cannot be split into train, validation and test."""
MIN_TUNE_EXAMPLES = 20
"""Fewer training tickets leave a label one or no validation ticket to tune the thresholds on."""
LONG_TEXT_CHARS = 1_000
"""Longer texts are read only up to the preset's token limit (64 tokens in the full preset)."""
Layout = Literal["label", "category_priority"]


@dataclass(frozen=True)
class Row:
    """One ticket and where it was read: the report and every error point back to ``file:line``."""

    text: str
    label: str
    file: str
    line: int


@dataclass(frozen=True)
class Finding:
    """One problem: ``error`` stops training, ``warning`` is reported only."""

    level: Literal["error", "warning"]
    where: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem} — {self.fix}"


@dataclass
class FolderContents:
    """What a folder holds: rows per split, the taxonomy (None when it cannot be built) and every finding."""

    folder: Path
    splits: dict[str, list[Row]] = field(default_factory=dict)
    taxonomy: Taxonomy | None = None
    layout: Layout = "label"
    taxonomy_source: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def error(self, where: str, problem: str, fix: str) -> None:
        self.findings.append(Finding("error", where, problem, fix))

    def warn(self, where: str, problem: str, fix: str) -> None:
        self.findings.append(Finding("warning", where, problem, fix))


def pair_label(category: str, priority: str) -> str:
    """The label of a (category, priority) pair when tickets carry no finer label."""
    return f"{category} [{priority}]"


def read_folder(folder: Path) -> FolderContents:
    """Read every split and the taxonomy of ``folder`` and check them against the contract."""
    out = FolderContents(folder)
    if not folder.is_dir():
        out.error(str(folder), "not a folder", "pass --data DIR, a folder holding train.csv (see docs/own-tickets.md)")
        return out
    raw: dict[str, list[dict[str, str]]] = {}
    columns: dict[str, set[str]] = {}
    for split in SPLITS:
        found = [folder / f"{split}.{ext}" for ext in ("csv", "jsonl") if (folder / f"{split}.{ext}").is_file()]
        if len(found) > 1:
            out.error(str(found[1]), f"{found[0].name} is there too", "keep one file per split")
        if found:
            raw[split], columns[split] = _read_records(found[0], out)
    if "train" not in raw:
        out.error(str(folder / "train.csv"), "no train.csv (or train.jsonl)",
                  "export your labelled tickets there with columns text,label or text,category,priority")
        return out
    out.layout = _layout(columns["train"])
    pairs: dict[str, tuple[str, str, str]] = {}
    for split, records in raw.items():
        if split != "train" and _layout(columns[split]) != out.layout:
            first = records[0]["__where__"] if records else str(folder / split)
            out.error(first, f"{split} has columns {sorted(columns[split])}, train has {sorted(columns['train'])}",
                      "give every split the same columns")
            continue
        out.splits[split] = list(_rows(records, out, pairs))
    out.taxonomy = _taxonomy(out, pairs)
    if out.taxonomy is not None:
        _check_labels(out, out.taxonomy)
    _check_texts(out)
    return out


def _read_records(path: Path, out: FolderContents) -> tuple[list[dict[str, str]], set[str]]:
    """Records of one file, each with ``__where__`` = ``file:line``; unreadable lines become errors."""
    records: list[dict[str, str]] = []
    names: set[str] = set()
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            if path.suffix == ".csv":
                reader = csv.DictReader(handle)
                names = set(reader.fieldnames or ())
                for line, row in enumerate(reader, start=2):
                    fields = {k: v or "" for k, v in row.items() if k is not None}
                    records.append({**fields, "__where__": f"{path}:{line}"})
            else:
                for line, text in enumerate(handle, start=1):
                    if not text.strip():
                        continue
                    try:
                        value = json.loads(text)
                    except ValueError as exc:
                        out.error(f"{path}:{line}", f"not JSON ({exc})", "write one JSON object per line")
                        continue
                    if not isinstance(value, dict):
                        out.error(f"{path}:{line}", "not a JSON object", 'write {"text": ..., "label": ...}')
                        continue
                    names |= set(value)
                    fields = {k: str(v) for k, v in value.items() if v is not None}
                    records.append({**fields, "__where__": f"{path}:{line}"})
    except UnicodeDecodeError as exc:
        out.error(str(path), f"not UTF-8 ({exc.reason} at byte {exc.start})", "save the file as UTF-8")
    if "text" not in names and records:
        out.error(f"{path}:1", f"no text column (found {sorted(names)})", "name the ticket text column `text`")
    if not records:
        out.error(str(path), "no tickets", "export at least one ticket per row, or delete the file")
    return records, names


def _layout(names: set[str]) -> Layout:
    return "category_priority" if {"category", "priority"} <= names and "label" not in names else "label"


def _rows(records: list[dict[str, str]], out: FolderContents, pairs: dict[str, tuple[str, str, str]]) -> Iterator[Row]:
    """Every record as a ``Row``; one without text or label is an error (never skipped quietly)."""
    for record in records:
        where = record["__where__"]
        file, line = where.rsplit(":", 1)
        text = normalise_text(record.get("text", ""))
        if out.layout == "category_priority":
            category, priority = record.get("category", "").strip(), record.get("priority", "").strip()
            if not category or priority not in {p.value for p in Priority}:
                out.error(where, f"category {category!r}, priority {priority!r}",
                          "give a category and a priority of High, Medium or Low "
                          "(map P1-P4 as docs/own-tickets.md shows)")
                continue
            label = pair_label(category, priority)
            pairs.setdefault(label, (category, priority, where))
        else:
            label = (record.get("label") or record.get("intent") or record.get("category") or "").strip()
        if not label:
            out.error(where, "no label", "label every ticket, or delete the row")
            continue
        if label == OUT_OF_SCOPE_LABEL:
            out.error(where, f"label {OUT_OF_SCOPE_LABEL!r} is reserved", "rename the label (taxonomy.csv names "
                      "the out-of-scope category in its own out_of_scope row)")
            continue
        yield Row(text, label, file, int(line))


def _taxonomy(out: FolderContents, pairs: dict[str, tuple[str, str, str]]) -> Taxonomy | None:
    """The folder's taxonomy.csv, the default one (every label in it), or the one the pairs give."""
    path = out.folder / "taxonomy.csv"
    given: Taxonomy | None = None
    try:
        if path.is_file():
            given = load_taxonomy(path)
    except TaxonomyError as exc:
        out.error(str(path), str(exc).removeprefix(f"{path}: "), "fix taxonomy.csv (columns label,category,priority)")
        return None
    if out.layout == "category_priority":
        out.taxonomy_source = "derived from the category and priority columns"
        rules = tuple(IntentRule(label, c, Priority(p)) for label, (c, p, _) in sorted(pairs.items()))
        try:
            return Taxonomy(rules, given.out_of_scope_category if given else DEFAULT_OUT_OF_SCOPE) if rules else None
        except TaxonomyError as exc:
            out.error(next(iter(pairs.values()))[2], str(exc), "rename the category on every ticket that has it")
            return None
    if given is not None:
        out.taxonomy_source = str(path)
        return given
    labels = {row.label for rows in out.splits.values() for row in rows}
    default = load_taxonomy()
    if labels and labels <= set(default.intents):
        out.taxonomy_source = f"{TAXONOMY_FILE} (the default: every label is a Banking77 intent)"
        return Taxonomy(tuple(r for r in default.rules if r.intent in labels), default.out_of_scope_category)
    out.error(str(path), "no taxonomy.csv", "write one with columns label,category,priority: one row per label "
              f"({len(labels)} labels, e.g. {sorted(labels)[:3]})")
    return None


def _check_labels(out: FolderContents, taxonomy: Taxonomy) -> None:
    train = Counter(row.label for row in out.splits.get("train", []))
    first: dict[str, str] = {}
    for rows in out.splits.values():
        for row in rows:
            first.setdefault(row.label, f"{row.file}:{row.line}")
    unknown = sorted(set(first) - set(taxonomy.intents))
    for label in unknown:
        count = sum(row.label == label for rows in out.splits.values() for row in rows)
        out.error(first[label], f"label {label!r} ({count} tickets) is not in the taxonomy",
                  "add a row for it to taxonomy.csv, or fix the label's spelling")
    lines = _taxonomy_lines(out.folder / "taxonomy.csv")
    for label in taxonomy.intents:
        where = lines.get(label, f"{out.taxonomy_source}")
        if train[label] == 0:
            out.error(where, f"label {label!r} has no training tickets",
                      "add labelled tickets to train, or delete the taxonomy row "
                      "(a label with no data is never predicted)")
        elif train[label] < MIN_TRAIN_EXAMPLES:
            out.error(first[label], f"label {label!r} has {train[label]} training tickets, fewer than "
                      f"{MIN_TRAIN_EXAMPLES}",
                      "label more tickets, or merge it into a close label (docs/own-tickets.md)")
        elif train[label] < MIN_TUNE_EXAMPLES and "validation" not in out.splits:
            out.warn(first[label], f"label {label!r} has {train[label]} training tickets: its validation share "
                     "(one or two) leaves its thresholds tuned by chance",
                     "label more tickets, merge it into a close label, or give a validation file")
    if not any(r.priority is Priority.HIGH for r in taxonomy.rules):
        out.warn(out.taxonomy_source, "no label is High: nothing will page on-call",
                 "mark the labels that need someone now as High")


def _taxonomy_lines(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        key = "label" if "label" in (reader.fieldnames or ()) else "intent"
        return {row.get(key) or "": f"{path}:{line}" for line, row in enumerate(reader, start=2)}


def _check_texts(out: FolderContents) -> None:
    """Empty and over-long texts, duplicates inside a split, and texts found in two splits."""
    seen: dict[str, Row] = {}
    for split, rows in out.splits.items():
        for row in rows:
            where = f"{row.file}:{row.line}"
            if not row.text:
                out.error(where, "empty text", "fill it in or delete the row")
                continue
            if len(row.text) > MAX_TEXT_CHARS:
                out.error(where, f"text of {len(row.text):,} characters: the worker dead-letters texts over "
                          f"{MAX_TEXT_CHARS:,}", "shorten it (keep the customer's first message) or delete the row")
            elif len(row.text) > LONG_TEXT_CHARS:
                out.warn(where, f"text of {len(row.text):,} characters: only its first tokens are read",
                         "put the customer's request first (drop signatures and quoted threads)")
            key = row.text.casefold()
            earlier = seen.get(key)
            if earlier is None:
                seen[key] = row
            elif Path(earlier.file).stem.split(".")[0] == split:
                clash = (
                    "" if earlier.label == row.label else f" with another label ({earlier.label!r} vs {row.label!r})"
                )
                out.warn(where, f"duplicate of {earlier.file}:{earlier.line}{clash}",
                         "delete one of them" + (" and keep the right label" if clash else ""))
            else:
                out.warn(where, f"same text as {earlier.file}:{earlier.line} in another split: test figures flatter "
                         "the model", "delete it from one of the two files")
