"""`triage schemas --out DIR` writes one JSON Schema per message type."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from triage.cli import main

SCHEMA_FILES = ["dead_letter.schema.json", "enriched_ticket.schema.json", "ticket.schema.json", "triage.schema.json"]


def test_schemas_command_writes_every_message_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == SCHEMA_FILES
    ticket = json.loads((tmp_path / "ticket.schema.json").read_text())
    assert set(ticket["required"]) == {"ticket_id", "text"}
    assert ticket["additionalProperties"] is True
    enriched = json.loads((tmp_path / "enriched_ticket.schema.json").read_text())
    assert "triage" in enriched["required"]
    category = enriched["$defs"]["Category"]["enum"]
    assert "Account/Login" in category and len(category) == 5


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
