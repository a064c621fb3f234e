"""Development history that has no place in the user docs: commit ids, issue numbers, work sessions."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Finding", "history_findings"]

# A commit id: 7-40 hex digits with at least one digit and one letter (so 1048576 and "defaced" pass), not the
# 8-digit suffix of a checkpoint version such as 20261206T215500Z-1a2b3c4d.
_COMMIT = re.compile(r"(?<![\w-])(?<!Z-)(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w-])")
_ISSUE = re.compile(r"\b(?:issue|ticket|pr)s?\s*#\s*\d+|\bissues?\s+\d+", re.IGNORECASE)
# "session" as a word; Kafka's session timeout (TRIAGE_SESSION_TIMEOUT_S) is a setting, not history.
_SESSION = re.compile(r"\bsessions?\b(?![\s_-]*timeout)", re.IGNORECASE)
_PATTERNS = {"commit id": _COMMIT, "issue number": _ISSUE, "session": _SESSION}


@dataclass(frozen=True)
class Finding:
    line: int
    kind: str
    text: str


def history_findings(markdown: str) -> list[Finding]:
    """Every line of ``markdown`` that names a commit, an issue or a session, with what matched."""
    return [
        Finding(number, kind, match.group(0))
        for number, line in enumerate(markdown.splitlines(), start=1)
        for kind, pattern in _PATTERNS.items()
        for match in pattern.finditer(line)
    ]
