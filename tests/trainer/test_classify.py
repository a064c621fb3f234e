"""``triage classify``: JSONL in, EnrichedTicket lines out; bad lines reported by number and code only."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from schemas.messages import EnrichedTicket
from triage.cli import main

SECRET = "my secret card number 4111"


def test_jsonl_batch_keeps_going_past_invalid_lines(tiny_checkpoint: Path, tmp_path: Path) -> None:
    source = tmp_path / "tickets.jsonl"
    lines = [
        json.dumps({"ticket_id": "t1", "text": "my card was stolen", "channel": "email", "extra": {"a": 1}}),
        "{not json " + SECRET,
        "",
        json.dumps({"ticket_id": "t2", "text": "   "}),
        json.dumps({"text": SECRET}),
        json.dumps({"ticket_id": "t3", "text": "when will my card arrive?"}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "enriched.jsonl"
    result = CliRunner().invoke(main, ["--log-json", "classify", "--model", str(tiny_checkpoint),
                                       "--input", str(source), "--output", str(out)])
    assert result.exit_code == 1, "invalid lines make the exit status 1 after the valid ones are written"
    enriched = [EnrichedTicket.model_validate_json(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [e.ticket_id for e in enriched] == ["t1", "t3"]
    assert enriched[0].channel == "email" and enriched[0].model_extra == {"extra": {"a": 1}}
    assert enriched[0].triage.priority.value == "High"
    assert "line 2: invalid_json" in result.stderr
    assert "line 4: empty_text" in result.stderr
    assert "line 5: missing_field" in result.stderr
    assert "2 tickets, 3 invalid" in result.stderr
    assert SECRET not in result.output + result.stderr


def test_text_arguments_go_to_stdout(tiny_checkpoint: Path) -> None:
    result = CliRunner().invoke(main, ["classify", "--model", str(tiny_checkpoint),
                                       "I was charged twice", "my card was stolen"])
    assert result.exit_code == 0, result.output
    rows = [EnrichedTicket.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [r.ticket_id for r in rows] == ["cli-1", "cli-2"]
    assert rows[1].triage.priority.value == "High"


def test_needs_exactly_one_input(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["classify", "--model", str(tiny_checkpoint)])
    assert result.exit_code == 2 and "give one of TEXT" in result.output
