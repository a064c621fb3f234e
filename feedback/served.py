"""The served checkpoint as the feedback process needs it: its taxonomy and its validation category mix,
re-read whenever ``latest`` moves (the worker hot-reloads the same link)."""

from __future__ import annotations

from pathlib import Path

import structlog

from inference.checkpoint import CheckpointError, read_manifest
from schemas.taxonomy import Taxonomy, load_taxonomy

__all__ = ["ServedCheckpoint", "validation_mix"]

log = structlog.get_logger(__name__)


def validation_mix(checkpoint: Path) -> dict[str, float]:
    """Share of each category in a checkpoint's validation data (its manifest), empty when it did not record it."""
    try:
        manifest = read_manifest(checkpoint)
    except CheckpointError:
        return {}
    return dict(manifest.get("data", {}).get("validation_categories", {}))


class ServedCheckpoint:
    """Taxonomy and drift reference of the checkpoint ``model_dir`` points at."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.path: Path | None = None
        self.taxonomy: Taxonomy = load_taxonomy()
        self.reference: dict[str, float] = {}
        self.refresh()

    def refresh(self) -> bool:
        """Re-read when the link points elsewhere; True when it did.

        Raises:
            FileNotFoundError: ``model_dir`` has no ``taxonomy.csv`` (no checkpoint there).
        """
        real = self.model_dir.resolve()
        if real == self.path:
            return False
        taxonomy_file = real / "taxonomy.csv"
        if not taxonomy_file.is_file():
            raise FileNotFoundError(
                f"no checkpoint at {self.model_dir} (no taxonomy.csv) — run `triage train --preset quick` or set "
                "TRIAGE_MODEL_DIR to the checkpoint the worker serves"
            )
        self.taxonomy = load_taxonomy(taxonomy_file)
        self.reference = validation_mix(real)
        self.path = real
        log.info("checkpoint_read", path=str(real), categories=len(self.taxonomy.categories),
                 reference=bool(self.reference))
        return True
