"""`triage feedback send` reads a CSV export: valid rows become messages, the others are listed by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedback.producer import RowProblem, read_feedback_csv
from schemas.feedback import Feedback


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
