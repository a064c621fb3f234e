"""The one base class of errors a user can fix: the command line prints their message alone and exits 1."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(RuntimeError):
    """Missing data, checkpoint or base model: the message says what to run or set."""
