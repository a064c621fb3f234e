"""Banking77 loading (local csv folder first, the hub second) and the stratified train/validation split."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import structlog

from inference.errors import UserError
from schemas.taxonomy import Taxonomy

__all__ = ["Banking77", "DataNotFoundError", "Split", "load_banking77", "stratified_split", "subsample"]

log = structlog.get_logger(__name__)


class DataNotFoundError(UserError):
    """Banking77 could not be read from any source; the message lists what was tried and how to fix it."""


@dataclass(frozen=True)
class Split:
    """Texts and their intent names, in the same order."""

    texts: list[str]
    intents: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Banking77:
    """The train and test splits plus where they came from (recorded in the manifest)."""

    train: Split
    test: Split
    source: str


def load_banking77(
    data_dir: Path | None, hub_dataset: str, taxonomy: Taxonomy | None = None
) -> Banking77:
    """Read Banking77 from ``data_dir`` (train.csv/test.csv with text,category) or else from the hub.

    Args:
        data_dir: Local folder; when given but unusable the hub is still tried and both failures reported.
        hub_dataset: Hub id for ``datasets.load_dataset`` (``PolyAI/banking77``).
        taxonomy: When given, every intent in the data must have a taxonomy rule.

    Raises:
        DataNotFoundError: Naming every source tried, why it failed, and how to fix it.
    """
    tried: list[str] = []
    data: Banking77 | None = None
    if data_dir is None:
        tried.append("local folder: none given (--data DIR or TRIAGE_DATA_DIR)")
    else:
        try:
            data = _from_csv_dir(data_dir)
        except (OSError, ValueError) as exc:
            tried.append(f"local folder {data_dir}: {exc}")
    if data is None:
        try:
            data = _from_hub(hub_dataset)
        except Exception as exc:  # noqa: BLE001 - the hub fails in many ways (offline, auth, renamed)
            tried.append(f"hub dataset {hub_dataset!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    if data is None:
        raise DataNotFoundError(
            "Banking77 not found. Tried:\n  - " + "\n  - ".join(tried) + "\nFix: pass --data DIR (or set "
            "TRIAGE_DATA_DIR) to a folder holding train.csv and test.csv with columns text,category, "
            "e.g. ../shared/data/banking77, or allow hub access for PolyAI/banking77."
        )
    if taxonomy is not None:
        unknown = sorted(set(data.train.intents + data.test.intents) - set(taxonomy.intents))
        if unknown:
            raise DataNotFoundError(
                f"{data.source} has intents without a taxonomy rule: {unknown[:10]} — "
                "add them to schemas/taxonomy.csv or fix the data"
            )
    log.info("data_loaded", source=data.source, train=len(data.train), test=len(data.test))
    return data


def _read_csv(path: Path) -> Split:
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {path.parent}")
    texts, intents = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"text", "category"} <= set(reader.fieldnames):
            raise ValueError(f"{path} needs columns text,category (found {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            if not row["text"] or not row["category"]:
                raise ValueError(f"{path}:{line}: empty text or category")
            texts.append(row["text"])
            intents.append(row["category"])
    if not texts:
        raise ValueError(f"{path} has no rows")
    return Split(texts, intents)


def _from_csv_dir(folder: Path) -> Banking77:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory")
    return Banking77(_read_csv(folder / "train.csv"), _read_csv(folder / "test.csv"), source=str(folder))


def _from_hub(hub_dataset: str) -> Banking77:
    from datasets import load_dataset

    ds = load_dataset(hub_dataset)
    names = ds["train"].features["label"].names

    def split(name: str) -> Split:
        return Split(list(ds[name]["text"]), [names[i] for i in ds[name]["label"]])

    return Banking77(split("train"), split("test"), source=f"hub:{hub_dataset}")


def stratified_split(data: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Carve a class-stratified validation split out of ``data``; returns (train, validation)."""
    from sklearn.model_selection import train_test_split

    tr_x, va_x, tr_y, va_y = train_test_split(
        data.texts, data.intents, test_size=fraction, random_state=seed, stratify=data.intents
    )
    return Split(list(tr_x), list(tr_y)), Split(list(va_x), list(va_y))


def subsample(data: Split, limit: int | None, seed: int) -> Split:
    """A class-stratified subset of at most ``limit`` examples (every class kept), or ``data`` itself."""
    if limit is None or limit >= len(data):
        return data
    from sklearn.model_selection import train_test_split

    kept_x, _, kept_y, _ = train_test_split(
        data.texts, data.intents, train_size=limit, random_state=seed, stratify=data.intents
    )
    return Split(list(kept_x), list(kept_y))
