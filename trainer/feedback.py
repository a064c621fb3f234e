"""Joined feedback as training data: versioned data folders cut from the feedback journal, and the folder
``triage train --feedback`` trains on (the base data plus the feedback's training part).

A feedback folder is a data folder of the project's contract (``train.jsonl``, ``test.jsonl``, ``taxonomy.csv``);
its ``test`` part is the held-out slice the promotion gate scores, chosen by a hash of the ticket id so a ticket
never moves between the two parts from one version to the next.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from schemas.messages import text_hash
from schemas.taxonomy import Taxonomy
from trainer.data import DataError, Split, TicketData

__all__ = ["Snapshot", "feedback_split", "merged_folder", "snapshot"]

log = structlog.get_logger(__name__)

VERSIONS = "versions"


@dataclass(frozen=True)
class Snapshot:
    """One versioned feedback folder and what went into it."""

    path: Path
    train: int
    test: int
    skipped: dict[str, int]


def _held_out(ticket_id: str, share: float) -> bool:
    return int(hashlib.sha256(ticket_id.encode("utf-8")).hexdigest()[:8], 16) % 10_000 < share * 10_000


def _label(row: dict[str, str], taxonomy: Taxonomy) -> str | None:
    """The agent's label; for category/priority feedback, the model's label when the agent confirmed both."""
    if row.get("label"):
        return row["label"] if row["label"] in taxonomy.intents else None
    if row.get("category") == row.get("model_category") and row.get("priority") == row.get("model_priority"):
        return row.get("model_label")
    return None


def snapshot(feedback_dir: Path, taxonomy: Taxonomy, held_out: float = 0.2) -> Snapshot:
    """Cut the next version ``<feedback_dir>/versions/vNNNN`` from the whole journal; point ``latest`` at it.

    De-duplicated: one row per ticket (its latest feedback), then one per text (its latest label). Rows whose label
    is not the taxonomy's, and category-only corrections (no label to learn), are counted in ``skipped``.

    Raises:
        DataError: The journal holds no usable example.
    """
    by_ticket: dict[str, dict[str, str]] = {}
    for journal in sorted((feedback_dir / "journal").glob("*.jsonl")):
        for line in journal.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                by_ticket[row["ticket_id"]] = row
    skipped = {"not_a_label": 0, "duplicate_text": 0}
    by_text: dict[str, tuple[str, str, str]] = {}
    for ticket_id, row in by_ticket.items():
        label = _label(row, taxonomy)
        if label is None:
            skipped["not_a_label"] += 1
            continue
        key = text_hash(row["text"])
        skipped["duplicate_text"] += key in by_text
        by_text[key] = (ticket_id, row["text"], label)
    if not by_text:
        raise DataError(f"no usable feedback in {feedback_dir / 'journal'} (skipped: {skipped}) — run "
                        "`triage feedback consume` while agents send feedback")
    root = feedback_dir / VERSIONS
    root.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(p.name[1:]) for p in root.glob("v[0-9]*") if p.name[1:].isdigit()), default=0)
    folder = root / f"v{number:04d}"
    staging = root / f".{folder.name}-{os.getpid()}"
    staging.mkdir()
    parts: dict[str, list[str]] = {"train": [], "test": []}
    for ticket_id, text, label in by_text.values():
        line = json.dumps({"text": text, "label": label}, ensure_ascii=False)
        parts["test" if _held_out(ticket_id, held_out) else "train"].append(line)
    for name, lines in parts.items():
        (staging / f"{name}.jsonl").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    taxonomy.write_csv(staging / "taxonomy.csv")
    os.replace(staging, folder)
    link = root / f".latest-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(folder.name, link)
    os.replace(link, root / "latest")
    log.info("feedback_snapshot", path=str(folder), train=len(parts["train"]), test=len(parts["test"]), **skipped)
    return Snapshot(folder, len(parts["train"]), len(parts["test"]), skipped)


def feedback_split(folder: Path, name: str) -> Split:
    """One part (``train`` or ``test``) of a feedback folder (or its ``versions/latest``)."""
    path = _version(folder) / f"{name}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return Split([r["text"] for r in rows], [r["label"] for r in rows])


def _version(folder: Path) -> Path:
    if (folder / "train.jsonl").is_file():
        return folder
    latest = folder / VERSIONS / "latest"
    if not (latest / "train.jsonl").is_file():
        raise DataError(f"{folder} is not a feedback folder (no train.jsonl, no {VERSIONS}/latest) — run "
                        f"`triage feedback snapshot --data-dir {folder}` first")
    return latest.resolve()


def merged_folder(base: TicketData, feedback: Path, weight: int, out: Path) -> Path:
    """A data folder: the base's train plus the feedback's train ``weight`` times, the base's validation and test.

    The feedback's test part stays out: it is what the promotion gate scores the new checkpoint on.
    """
    version = _version(feedback)
    extra = feedback_split(version, "train")
    unknown = sorted(set(extra.intents) - set(base.taxonomy.intents))
    if unknown:
        raise DataError(f"{version} has labels the base data's taxonomy lacks: {unknown[:5]} — snapshot the "
                        "feedback with the checkpoint trained on this base (`--model`)")
    folder = out / f"{version.name}-w{weight}"
    folder.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": Split(base.train.texts + extra.texts * weight, base.train.intents + extra.intents * weight),
        "test": base.test,
        **({"validation": base.validation} if base.validation is not None else {}),
    }
    for name, split in splits.items():
        lines = (json.dumps({"text": t, "label": label}, ensure_ascii=False) for t, label in zip(
            split.texts, split.intents, strict=True))
        (folder / f"{name}.jsonl").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    base.taxonomy.write_csv(folder / "taxonomy.csv")
    log.info("feedback_merged", path=str(folder), base_train=len(base.train), feedback_train=len(extra), weight=weight)
    return folder
