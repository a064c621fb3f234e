"""Two fixed halves of a text set by a stable hash of each text: one to fit on, one to report on.

A hash of the text (not a random draw, not the file order) puts each text in the same half on every machine
and every run, and a text added later lands in a half without moving the others.
"""

from __future__ import annotations

import hashlib

__all__ = ["halves"]


def halves(texts: list[str]) -> tuple[list[str], list[str]]:
    """(texts whose hash is even, texts whose hash is odd), each in the given order; no text is in both."""
    first = [text for text in texts if _even(text)]
    second = [text for text in texts if not _even(text)]
    return first, second


def _even(text: str) -> bool:
    return hashlib.sha256(text.strip().lower().encode("utf-8")).digest()[0] % 2 == 0
