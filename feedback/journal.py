"""Joined feedback as training examples: appended to ``<data_dir>/journal/*.jsonl``, the published text only.

The text is the one the worker published (and so triaged); an agent's own ``text`` is never written. One file
per process start, so concurrent processes never interleave lines; ``triage feedback snapshot`` de-duplicates.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from feedback.join import Joined

__all__ = ["Journal"]


class Journal:
    """Append-only JSON Lines of joined examples (text, label or category/priority, model version, time)."""

    def __init__(self, data_dir: Path) -> None:
        folder = data_dir / "journal"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = folder / f"{stamp}-{os.getpid()}.jsonl"
        self.written = 0

    def append(self, joined: list[Joined]) -> None:
        """Write the examples whose published text was kept; flushed before the batch's offsets are committed."""
        now = datetime.now(UTC).isoformat()
        lines = [
            json.dumps({"ticket_id": j.ticket_id, "text": j.published.text, "label": j.label, "category": j.category,
                        "priority": j.priority, "model_label": j.published.label,
                        "model_category": j.published.category, "model_priority": j.published.priority,
                        "model_version": j.published.model_version, "joined_at": now},
                       ensure_ascii=False)
            for j in joined if j.published.text is not None
        ]
        if not lines:
            return
        with self.path.open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.written += len(lines)
