"""`triage feedback send` reads a CSV export: valid rows become messages, the others are listed by line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedback.producer import RowProblem, read_feedback_csv
from loadtest.broker import EmbeddedBroker
from schemas.feedback import Feedback
from tests.worker.kit import PARTITIONS, read_topics
from triage.cli import main


def test_rows_become_feedback_or_problems_by_line(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "ticket_id,label,category,priority,agent,ignored\n"
        "t-1,card_arrival,,,ana,x\n"
        "t-2,,Cards,High,,\n"
        "t-3,,Cards,,bo,\n",
        encoding="utf-8",
    )
    rows = list(read_feedback_csv(export))
    assert [type(r) for r in rows] == [Feedback, Feedback, RowProblem]
    assert str(rows[2]).startswith("line 4:")


def test_an_export_without_ticket_ids_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text("id,label\n1,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no ticket_id column"):
        list(read_feedback_csv(export))


def test_send_puts_each_valid_row_on_the_topic_keyed_by_ticket(
    broker: EmbeddedBroker, unique: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = unique("fb-send")
    export = tmp_path / "export.csv"
    export.write_text("ticket_id,label,category,priority\nt-1,card_arrival,,\nt-2,,Cards,High\nt-3,,,\n",
                      encoding="utf-8")
    monkeypatch.setenv("TRIAGE_TOPICS__PARTITIONS", str(PARTITIONS))
    result = CliRunner().invoke(main, ["feedback", "send", str(export), "--brokers", broker.bootstrap,
                                       "--topic", topic])
    assert result.exit_code == 1, result.output  # the invalid row
    assert "sent 2 feedback messages" in result.output and "line 4:" in result.output
    records = read_topics(broker.bootstrap, [topic], lambda got: len(got) >= 2, timeout=30)
    assert sorted((r.key, r.value.get("label") or r.value["category"]) for r in records) == [
        (b"t-1", "card_arrival"), (b"t-2", "Cards")]
