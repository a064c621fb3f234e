"""The urgent reports are High labels' tickets in words Banking77 does not have, and only Banking77's labels
get them scored."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from schemas.enums import Priority
from schemas.taxonomy import Taxonomy, load_taxonomy
from trainer.urgent import URGENT_REPORTS, reported_for, urgent_reports


def test_every_report_is_written_for_a_high_label_and_none_is_a_banking77_text(data_dir: Path) -> None:
    default = load_taxonomy()
    assert all(default.rule(label).priority == Priority.HIGH for label in URGENT_REPORTS)
    texts = [text for _, text in urgent_reports()]
    assert len(texts) == len(set(texts)) >= 80
    banking77 = set()
    for split in ("train.csv", "test.csv"):
        with (data_dir / split).open(newline="", encoding="utf-8") as handle:
            banking77 |= {row["text"].strip().lower() for row in csv.DictReader(handle)}
    assert not {text.strip().lower() for text in texts} & banking77


def test_reported_only_where_every_label_is_there_and_pages() -> None:
    default = load_taxonomy()
    assert reported_for(default)
    demoted = Taxonomy(tuple(replace(r, priority=Priority.MEDIUM) if r.intent == "card_swallowed" else r
                             for r in default.rules))
    assert not reported_for(demoted)
    without = Taxonomy(tuple(r for r in default.rules if r.intent != "lost_or_stolen_phone"))
    assert not reported_for(without)
