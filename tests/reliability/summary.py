"""One summary line per scenario, printed as it ends (``pytest -s``) and again at the end of the run.

Lines wait in ``SUMMARIES`` until the test ends; the reliability conftest then moves them onto its report.
"""

from __future__ import annotations

from tests.reliability.traffic import Outcome

__all__ = ["SUMMARIES", "report", "report_line"]

SUMMARIES: list[str] = []


def report(outcome: Outcome) -> None:
    """Print the scenario's ``key=value`` summary line and keep it for the end-of-run section."""
    report_line(outcome.summary())


def report_line(line: str) -> None:
    print(line)
    SUMMARIES.append(line)
