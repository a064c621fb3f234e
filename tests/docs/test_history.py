"""README.md and docs/ describe the software as it is: no commit ids, issue numbers or session talk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.history import history_findings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_history_in_the_docs(page: Path) -> None:
    findings = history_findings(page.read_text(encoding="utf-8"))
    assert not findings, f"history in the docs, {page.relative_to(ROOT)}: " + "; ".join(
        f"line {f.line}: {f.kind} {f.text!r}" for f in findings
    ) + " — state the fact as it is now; what changed for users goes in CHANGELOG.md"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("measured at e905f34 on the VM", "commit id"),
        ("before (bcd6595) and after", "commit id"),
        ("the full hash 6fe39391b7c2a9d0e8f1a2b3c4d5e6f708192a3b", "commit id"),
        ("see issue #15 for the targets", "issue number"),
        ("as issue 15 asked", "issue number"),
        ("against the Issue 25 targets", "issue number"),
        ("another session measured it", "session"),
        ("Sessions before this one", "session"),
    ],
)
def test_each_pattern_is_refused(line: str, kind: str) -> None:
    assert [f.kind for f in history_findings(line)] == [kind]


@pytest.mark.parametrize(
    "line",
    [
        "`TRIAGE_SESSION_TIMEOUT_S` (10 s): a worker silent this long loses its partitions",
        "within the session timeout plus the commit interval",
        "models/finetuned/20261206T215500Z-1a2b3c4d/ holds the checkpoint",
        "`TRIAGE_MAX_MESSAGE_BYTES` is 1048576 by default; the tickets were defaced",
        "the SHA-256 of the payload, a ticket id such as T-1001",
    ],
)
def test_current_facts_pass(line: str) -> None:
    assert history_findings(line) == []
