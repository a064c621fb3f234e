"""`triage schemas --out DIR` writes one JSON Schema per message type."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from inference.checkpoint import REQUIRED_FILES
from schemas.taxonomy import load_taxonomy
from triage.cli import main

SCHEMA_FILES = [
    "dead_letter.schema.json", "enriched_ticket.schema.json", "feedback.schema.json", "ticket.schema.json",
    "triage.schema.json",
]


def test_schemas_command_writes_every_message_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == SCHEMA_FILES
    ticket = json.loads((tmp_path / "ticket.schema.json").read_text())
    assert set(ticket["required"]) == {"ticket_id", "text"}
    assert ticket["additionalProperties"] is True
    enriched = json.loads((tmp_path / "enriched_ticket.schema.json").read_text())
    assert "triage" in enriched["required"]
    category = enriched["$defs"]["Triage"]["properties"]["category"]["enum"]
    assert category == list(load_taxonomy().categories)


def test_schemas_of_a_checkpoint_take_its_categories(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for name in REQUIRED_FILES:
        (checkpoint / name).write_text("{}")  # the command reads the taxonomy alone
    (checkpoint / "taxonomy.csv").write_text("label,category,priority\njam,Hardware,Low\nfire,Facilities,High\n")
    result = CliRunner().invoke(main, ["schemas", "--out", str(tmp_path / "out"), "--model", str(checkpoint)])
    assert result.exit_code == 0, result.output
    triage = json.loads((tmp_path / "out" / "triage.schema.json").read_text())
    assert triage["properties"]["category"]["enum"] == ["Hardware", "Facilities", "Out of scope"]


def test_committed_schemas_match_the_code(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[2] / "docs" / "schemas"
    result = CliRunner().invoke(main, ["schemas", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == SCHEMA_FILES, "the command wrote every schema"
    assert sorted(p.name for p in committed.glob("*.schema.json")) == SCHEMA_FILES, (
        "docs/schemas/ and the message types differ: run `triage schemas --out docs/schemas`"
    )
    for fresh in tmp_path.iterdir():
        assert (committed / fresh.name).read_text() == fresh.read_text(), (
            f"docs/schemas/{fresh.name} is stale: run `triage schemas --out docs/schemas`"
        )
