"""``triage data report`` draws the data set before anyone trains on it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from triage.cli import main


def test_data_report_writes_plots_and_summary(write_csv_dir, tmp_path: Path) -> None:
    rows = [("I lost my card", "lost_or_stolen_card"), ("Where is my card?", "card_arrival"),
            ("What is the exchange rate?", "exchange_rate")] * 5
    folder = write_csv_dir(rows, rows[:3])
    results = tmp_path / "results"
    result = CliRunner().invoke(main, ["data", "report", "--data", str(folder), "--results", str(results)])
    assert result.exit_code == 0, result.output
    summary = (results / "data_report.md").read_text(encoding="utf-8")
    assert "Train 15 examples, test 3" in summary and "| Account/Login | 6 |" in summary
    for name in ("class_balance", "text_length", "categories", "priorities"):
        assert (results / "plots" / "data" / f"{name}.png").stat().st_size > 1000
