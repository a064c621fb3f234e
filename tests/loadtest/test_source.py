"""Replay sources: Banking77 splits with their ground truth, and Ticket JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.source import SourceError, load_source
from schemas.taxonomy import load_taxonomy


def test_banking77_split_carries_the_taxonomy_truth(data_dir: Path) -> None:
    records = load_source("test", data_dir)
    assert len(records) == 3080
    taxonomy = load_taxonomy()
    for record in records[:50]:
        assert record.truth is not None
        rule = taxonomy.rule(record.truth.intent)
        assert (record.truth.category, record.truth.priority) == (rule.category, rule.priority)


def test_jsonl_keeps_fields_and_reads_truth_from_metadata(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    lines = [
        {
            "ticket_id": "a",
            "text": "my card never arrived",
            "channel": "email",
            "metadata": {"intent": "card_arrival", "vip": True},
        },
        {"ticket_id": "b", "text": "hello"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    first, second = load_source(str(path), None)
    assert first.text == "my card never arrived"
    assert first.truth is not None and first.truth.category == "Order/Delivery"
    assert first.truth.priority == load_taxonomy().rule("card_arrival").priority
    assert first.fields["channel"] == "email" and first.fields["metadata"] == {
        "intent": "card_arrival",
        "vip": True,
    }
    assert second.truth is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"ticket_id": "a"}\n', "tickets.jsonl:1: not a valid Ticket"),
        ('{"ticket_id": "a", "text": "x", "metadata": {"intent": "nope"}}\n', "not a label of the taxonomy"),
        ("\n", "holds no tickets"),
    ],
)
def test_bad_jsonl_names_the_line_and_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tickets.jsonl"
    path.write_text(content)
    with pytest.raises(SourceError, match=message):
        load_source(str(path), None)


def test_a_missing_file_says_what_sources_exist(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="--source train, --source test"):
        load_source(str(tmp_path / "nope.jsonl"), None)
