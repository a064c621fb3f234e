"""Ticket data (a team's folder under the contract of ``trainer.datacheck``, else Banking77 from the hub) and
the stratified splits every command shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from inference.errors import UserError
from schemas.taxonomy import Taxonomy, load_taxonomy
from trainer.datacheck import Row, read_folder

__all__ = [
    "CARVED_TEST_FRACTION",
    "DataError",
    "DataNotFoundError",
    "Split",
    "TicketData",
    "load_data",
    "stratified_split",
    "subsample",
    "training_splits",
]

log = structlog.get_logger(__name__)

CARVED_TEST_FRACTION = 0.1
"""Share of train held out as the test split (stratified, seed 0) when a folder has no test file."""


class DataNotFoundError(UserError):
    """No data could be read from any source; the message lists what was tried and how to fix it."""


class DataError(UserError):
    """A data folder breaks the contract; the message lists every problem by file and line with its fix."""


@dataclass(frozen=True)
class Split:
    """Texts and their labels (intents), in the same order."""

    texts: list[str]
    intents: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class TicketData:
    """The splits, the taxonomy they are labelled with, and where they came from (recorded in the manifest).

    ``validation`` is None when the folder has none: training then carves it out of ``train``.
    """

    train: Split
    test: Split
    source: str
    taxonomy: Taxonomy
    validation: Split | None = None


def load_data(data_dir: Path | None, hub_dataset: str) -> TicketData:
    """Read a data folder, or Banking77 from the hub when no usable folder is given.

    Args:
        data_dir: A folder under the data contract (``triage data check DIR`` reports on it). A folder with
            problems is refused with all of them; the hub is tried only when it is missing or has no train file.
        hub_dataset: Hub id for ``datasets.load_dataset`` (``PolyAI/banking77``), labelled by the default taxonomy.

    Raises:
        DataError: The folder breaks the contract (every problem, by file and line).
        DataNotFoundError: Naming every source tried, why it failed, and how to fix it.
    """
    tried: list[str] = []
    if data_dir is None:
        tried.append("local folder: none given (--data DIR or TRIAGE_DATA_DIR)")
    else:
        contents = read_folder(data_dir)
        if "train" in contents.splits:
            if contents.errors:
                raise DataError(
                    f"{data_dir} breaks the data contract ({len(contents.errors)} problems; `triage data check "
                    f"{data_dir}` lists the warnings too):\n  - " + "\n  - ".join(map(str, contents.errors[:30]))
                    + ("\n  - ..." if len(contents.errors) > 30 else "")
                )
            assert contents.taxonomy is not None, "a folder without errors has a taxonomy"
            data = _from_contents(contents.splits, contents.taxonomy, str(data_dir))
            log.info("data_loaded", source=data.source, train=len(data.train), test=len(data.test),
                     labels=len(data.taxonomy.rules), categories=len(data.taxonomy.categories))
            return data
        tried.append(f"local folder {data_dir}: {contents.errors[0]}")
    try:
        data = _from_hub(hub_dataset)
    except Exception as exc:  # noqa: BLE001 - the hub fails in many ways (offline, auth, renamed)
        tried.append(f"hub dataset {hub_dataset!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        raise DataNotFoundError(
            "Banking77 not found. Tried:\n  - " + "\n  - ".join(tried) + "\nFix: pass --data DIR (or set "
            "TRIAGE_DATA_DIR) to a folder holding train.csv (see docs/own-tickets.md), e.g. "
            "../shared/data/banking77, or allow hub access for PolyAI/banking77."
        ) from exc
    log.info("data_loaded", source=data.source, train=len(data.train), test=len(data.test))
    return data


def _from_contents(splits: dict[str, list[Row]], taxonomy: Taxonomy, source: str) -> TicketData:
    def split(name: str) -> Split:
        rows = splits[name]
        return Split([r.text for r in rows], [r.label for r in rows])

    train = split("train")
    if "test" in splits:
        test = split("test")
    else:
        train, test = stratified_split(train, CARVED_TEST_FRACTION, seed=0)
    validation = split("validation") if "validation" in splits else None
    return TicketData(train, test, source, taxonomy, validation)


def _from_hub(hub_dataset: str) -> TicketData:
    from datasets import load_dataset

    ds = load_dataset(hub_dataset)
    names = ds["train"].features["label"].names

    def split(name: str) -> Split:
        return Split(list(ds[name]["text"]), [names[i] for i in ds[name]["label"]])

    return TicketData(split("train"), split("test"), f"hub:{hub_dataset}", load_taxonomy())


def training_splits(data: TicketData, fraction: float, seed: int) -> tuple[Split, Split]:
    """(train, validation): the folder's validation file when it has one, else a stratified share of train."""
    if data.validation is not None:
        return data.train, data.validation
    return stratified_split(data.train, fraction, seed)


def stratified_split(data: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Carve a class-stratified share out of ``data``; returns (rest, share).

    The share holds at least one example per class even when ``fraction`` of a small folder would not.
    """
    from sklearn.model_selection import train_test_split

    classes = len(set(data.intents))
    size: float | int = fraction if fraction * len(data) >= classes else classes
    tr_x, va_x, tr_y, va_y = train_test_split(
        data.texts, data.intents, test_size=size, random_state=seed, stratify=data.intents
    )
    return Split(list(tr_x), list(tr_y)), Split(list(va_x), list(va_y))


def subsample(data: Split, limit: int | None, seed: int) -> Split:
    """A class-stratified subset of at most ``limit`` examples (every class kept), or ``data`` itself."""
    if limit is None or limit >= len(data):
        return data
    from sklearn.model_selection import train_test_split

    kept_x, _, kept_y, _ = train_test_split(
        data.texts, data.intents, train_size=max(limit, len(set(data.intents))), random_state=seed,
        stratify=data.intents
    )
    return Split(list(kept_x), list(kept_y))
