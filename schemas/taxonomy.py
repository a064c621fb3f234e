"""Banking77 intent → category/priority mapping, read from the reviewable ``taxonomy.csv``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from schemas.enums import Category, Priority

__all__ = ["TAXONOMY_FILE", "IntentRule", "Taxonomy", "load_taxonomy"]

TAXONOMY_FILE = Path(__file__).with_name("taxonomy.csv")
CATEGORIES: tuple[Category, ...] = tuple(Category)
PRIORITIES: tuple[Priority, ...] = tuple(Priority)


@dataclass(frozen=True)
class IntentRule:
    intent: str
    category: Category
    priority: Priority
    rationale: str


@dataclass(frozen=True)
class Taxonomy:
    """Intents in a fixed order (the model's label ids) and their category/priority."""

    rules: tuple[IntentRule, ...]

    @property
    def intents(self) -> list[str]:
        return [r.intent for r in self.rules]

    def rule(self, intent: str) -> IntentRule:
        return self._by_intent[intent]

    @cached_property
    def _by_intent(self) -> dict[str, IntentRule]:
        return {r.intent: r for r in self.rules}

    @cached_property
    def category_matrix(self) -> np.ndarray:
        """(n_intents, n_categories) 0/1 matrix: intent probabilities @ M = category probabilities."""
        return self._one_hot([CATEGORIES.index(r.category) for r in self.rules], len(CATEGORIES))

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
            raise ValueError(f"taxonomy has no rule for intents: {sorted(missing)}")
        return Taxonomy(tuple(self._by_intent[i] for i in intents))

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["intent", "category", "priority", "rationale"])
            for r in self.rules:
                writer.writerow([r.intent, r.category.value, r.priority.value, r.rationale])


def load_taxonomy(path: Path = TAXONOMY_FILE) -> Taxonomy:
    """Read a taxonomy CSV; raises ``ValueError`` naming the bad row on a typo."""
    rules = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                rules.append(
                    IntentRule(
                        intent=row["intent"],
                        category=Category(row["category"]),
                        priority=Priority(row["priority"]),
                        rationale=row["rationale"],
                    )
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: bad taxonomy row {row!r}: {exc}") from exc
    intents = [r.intent for r in rules]
    if len(set(intents)) != len(intents):
        raise ValueError(f"{path}: duplicate intents")
    return Taxonomy(tuple(rules))
