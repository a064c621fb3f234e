"""Versioned checkpoint folders and the atomically switched ``latest`` pointer."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.errors import UserError

__all__ = [
    "DEFAULT_MODELS_DIR",
    "MANIFEST",
    "REQUIRED_FILES",
    "CheckpointError",
    "new_version",
    "point_latest",
    "publish",
    "resolve_checkpoint",
    "read_manifest",
    "remove_staging",
]

DEFAULT_MODELS_DIR = Path("models/finetuned")
MANIFEST = "checkpoint.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "taxonomy.csv", "thresholds.json", MANIFEST)
_PICKLED = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")


class CheckpointError(UserError):
    """A checkpoint is missing, incomplete or unsafe; the message says what to do."""


def new_version(config: dict[str, Any], now: datetime | None = None) -> str:
    """Sortable, unique name: UTC timestamp + short hash of the training config."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{stamp}-{digest}"


def publish(staging: Path, root: Path, version: str, link: bool = True) -> Path:
    """Move a fully written checkpoint into ``root/version`` and point ``root/latest`` at it atomically.

    The manifest is written last into ``staging``; a folder without it is never published, and the
    symlink swap is a single ``rename`` so a reader never sees a half-written ``latest``.
    """
    missing = [f for f in REQUIRED_FILES if not (staging / f).exists()]
    if missing:
        raise CheckpointError(f"refusing to publish {staging}: missing {missing}")
    final = root / version
    if final.exists():
        raise CheckpointError(f"{final} already exists; versions are never overwritten")
    os.replace(staging, final)
    if link:  # else `triage promote` decides whether it becomes latest
        point_latest(root, version)
    return final


def point_latest(root: Path, version: str) -> None:
    """Point ``root/latest`` at ``root/version`` with one ``rename``: a reader sees the old or the new link."""
    tmp_link = root / f".latest-{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(version, tmp_link)
    os.replace(tmp_link, root / "latest")


def resolve_checkpoint(path: Path | str) -> Path:
    """Follow ``latest`` (or any link) to a real, complete, safetensors-only checkpoint folder.

    Raises:
        CheckpointError: With the path tried and the command that fixes it.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path} — run `triage train --preset quick` (or pass --model DIR)"
        )
    real = path.resolve()
    if not real.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint folder")
    missing = [f for f in REQUIRED_FILES if not (real / f).is_file()]
    if "model.safetensors" in missing and any((real / f).exists() for f in _PICKLED):
        raise CheckpointError(
            f"{real} holds pickled weights only; they are never loaded (arbitrary code). "
            "Re-save the model with safetensors or retrain with `triage train`."
        )
    if missing:
        raise CheckpointError(
            f"checkpoint {real} is incomplete (missing {', '.join(missing)}) — "
            "retrain with `triage train --preset quick` or point --model at a complete version"
        )
    return real


def read_manifest(checkpoint: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((checkpoint / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"unreadable manifest in {checkpoint}: {exc}") from exc
    return data


def remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
