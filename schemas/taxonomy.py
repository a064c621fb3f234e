"""A team's labels → category/priority mapping, read from a reviewable ``taxonomy.csv``.

Categories are data: each checkpoint carries its own taxonomy, and the routing topics, reports and
JSON Schemas follow it. ``schemas/taxonomy.csv`` (Banking77's 77 intents under five categories) is
the default. Priorities are fixed (High pages on-call), so every team maps its own scheme onto them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from schemas.enums import Priority

__all__ = [
    "DEFAULT_OUT_OF_SCOPE",
    "MAX_SLUG_CHARS",
    "OUT_OF_SCOPE_LABEL",
    "PRIORITIES",
    "TAXONOMY_FILE",
    "IntentRule",
    "Taxonomy",
    "TaxonomyError",
    "check_slugs",
    "load_taxonomy",
    "slug",
]

TAXONOMY_FILE = Path(__file__).with_name("taxonomy.csv")
PRIORITIES: tuple[Priority, ...] = tuple(Priority)
OUT_OF_SCOPE_LABEL = "out_of_scope"
"""Reserved label: its row names the category that out-of-scope tickets take (it is not a trained label)."""
DEFAULT_OUT_OF_SCOPE = "Out of scope"
"""The category out-of-scope tickets take when the taxonomy has no ``out_of_scope`` row."""
MAX_SLUG_CHARS = 200
"""Longest category slug: a topic name is at most 249 characters, and the route prefix needs room."""
_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


class TaxonomyError(ValueError):
    """A taxonomy cannot be used; the message names the file, the line and the fix."""


def slug(category: str) -> str:
    """Topic-safe name of a category, e.g. ``account-login`` for ``Account/Login``."""
    return re.sub(r"[^a-z0-9]+", "-", category.lower()).strip("-")


@dataclass(frozen=True)
class IntentRule:
    """One label (an intent, or a team's own fine-grained label) and where its tickets go."""

    intent: str
    category: str
    priority: Priority
    rationale: str = ""


@dataclass(frozen=True)
class Taxonomy:
    """Labels in a fixed order (the model's label ids), their category/priority, and the out-of-scope category.

    Categories keep the order of their first label in the file, then the out-of-scope category when no label
    has it.
    """

    rules: tuple[IntentRule, ...]
    out_of_scope_category: str = DEFAULT_OUT_OF_SCOPE

    def __post_init__(self) -> None:
        check_slugs(self.categories)

    @property
    def intents(self) -> list[str]:
        return [r.intent for r in self.rules]

    @cached_property
    def categories(self) -> tuple[str, ...]:
        seen = dict.fromkeys(r.category for r in self.rules)
        seen.setdefault(self.out_of_scope_category)
        return tuple(seen)

    @cached_property
    def out_of_scope_index(self) -> int:
        return self.categories.index(self.out_of_scope_category)

    def rule(self, intent: str) -> IntentRule:
        return self._by_intent[intent]

    @cached_property
    def _by_intent(self) -> dict[str, IntentRule]:
        return {r.intent: r for r in self.rules}

    @cached_property
    def category_matrix(self) -> np.ndarray:
        """(n_intents, n_categories) 0/1 matrix: intent probabilities @ M = category probabilities."""
        return self._one_hot([self.categories.index(r.category) for r in self.rules], len(self.categories))

    @cached_property
    def priority_matrix(self) -> np.ndarray:
        return self._one_hot([PRIORITIES.index(r.priority) for r in self.rules], len(PRIORITIES))

    def _one_hot(self, columns: Sequence[int], width: int) -> np.ndarray:
        matrix = np.zeros((len(self.rules), width), dtype=np.float32)
        matrix[np.arange(len(columns)), columns] = 1.0
        return matrix

    def reorder(self, intents: Sequence[str]) -> Taxonomy:
        """The same rules in the given label order (a checkpoint's id2label order)."""
        missing = set(intents) - set(self._by_intent)
        if missing:
            raise TaxonomyError(f"taxonomy has no rule for labels: {sorted(missing)}")
        return Taxonomy(tuple(self._by_intent[i] for i in intents), self.out_of_scope_category)

    def write_csv(self, path: Path) -> None:
        """Write the rules, the ``out_of_scope`` row last, in the format ``load_taxonomy`` reads."""
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "category", "priority", "rationale"])
            for r in self.rules:
                writer.writerow([r.intent, r.category, r.priority.value, r.rationale])
            writer.writerow([OUT_OF_SCOPE_LABEL, self.out_of_scope_category, Priority.LOW.value,
                             "Tickets unlike any trained label take this category (and go to review)."])


def check_slugs(categories: Sequence[str]) -> None:
    """Refuse categories whose routing topic would be invalid or shared with another category.

    Raises:
        TaxonomyError: Naming the categories and what to rename.
    """
    owners: dict[str, str] = {}
    for category in categories:
        name = slug(category)
        if not _SLUG.fullmatch(name) or len(name) > MAX_SLUG_CHARS:
            raise TaxonomyError(
                f"category {category!r} gives no valid routing topic name (slug {name!r}): name it with letters "
                f"or digits, at most {MAX_SLUG_CHARS} characters"
            )
        if name in owners:
            raise TaxonomyError(
                f"categories {owners[name]!r} and {category!r} would share the routing topic <prefix>{name}: "
                "rename one of them in taxonomy.csv"
            )
        owners[name] = category


def load_taxonomy(path: Path = TAXONOMY_FILE) -> Taxonomy:
    """Read a taxonomy CSV (``label,category,priority[,rationale]``; ``intent`` is read as ``label``).

    Raises:
        TaxonomyError: Naming the file, line and fix on a bad row, a duplicate label or a bad category name.
    """
    rules: list[IntentRule] = []
    out_of_scope = DEFAULT_OUT_OF_SCOPE
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or ())
        key = "label" if "label" in fields else "intent"
        if not {key, "category", "priority"} <= fields:
            raise TaxonomyError(f"{path}:1: needs columns label,category,priority (found {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            label, category = (row[key] or "").strip(), (row["category"] or "").strip()
            priority = (row["priority"] or "").strip()
            if not label or not category:
                raise TaxonomyError(f"{path}:{line}: empty label or category — fill both in or delete the row")
            if priority not in {p.value for p in Priority}:
                raise TaxonomyError(f"{path}:{line}: priority {priority!r} for {label!r} is not High, Medium or "
                                    "Low — map your scheme onto these three (see docs/own-tickets.md)")
            if label in seen:
                raise TaxonomyError(f"{path}:{line}: label {label!r} already on line {seen[label]} — keep one row")
            seen[label] = line
            if label == OUT_OF_SCOPE_LABEL:
                out_of_scope = category
                continue
            rules.append(IntentRule(label, category, Priority(priority), (row.get("rationale") or "").strip()))
    if not rules:
        raise TaxonomyError(f"{path}: no label rows — one row per label: label,category,priority")
    try:
        return Taxonomy(tuple(rules), out_of_scope)
    except TaxonomyError as exc:
        raise TaxonomyError(f"{path}: {exc}") from exc
