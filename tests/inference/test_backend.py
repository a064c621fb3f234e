"""Backend ``auto``: the fastest engine whose export was judged fit, explicit choices always win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inference import classifier
from inference.checkpoint import CheckpointError
from inference.classifier import ONNX_FILES, SERVING_FILE, resolve_backend


def _checkpoint(tmp_path: Path, verdicts: dict[str, tuple[bool, str]] | None) -> Path:
    """A folder with both ONNX files and, unless None, their verdicts (resolution reads nothing else)."""
    folder = tmp_path / "ckpt"
    (folder / "onnx").mkdir(parents=True)
    for rel in ONNX_FILES.values():
        (folder / rel).write_bytes(b"onnx")
    if verdicts is not None:
        backends = {name: {"fit": fit, "reason": reason} for name, (fit, reason) in verdicts.items()}
        (folder / SERVING_FILE).write_text(json.dumps({"backends": backends}), encoding="utf-8")
    return folder


def test_auto_on_cpu_serves_the_int8_export_when_fit(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, {"onnx": (True, "same"), "onnx-int8": (True, "-0.10 points")})
    serving = resolve_backend(folder, "auto", device="cpu")
    assert (serving.backend, serving.device, serving.precision) == ("onnx-int8", "cpu", "int8")
    assert serving.reason == "auto: CPU, onnx-int8 fit: -0.10 points"


def test_auto_falls_back_to_fp32_then_torch_and_says_why(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, {"onnx": (True, "same"), "onnx-int8": (False, "changes High recall")})
    serving = resolve_backend(folder, "auto", device="cpu")
    assert (serving.backend, serving.precision) == ("onnx", "fp32")
    assert "onnx-int8 unfit: changes High recall" in serving.reason

    folder = _checkpoint(tmp_path / "b", {"onnx": (False, "loses 0.8 points"), "onnx-int8": (False, "loses 2 points")})
    serving = resolve_backend(folder, "auto", device="cpu")
    assert (serving.backend, serving.device, serving.precision) == ("torch", "cpu", "fp32")
    assert "onnx-int8 unfit: loses 2 points" in serving.reason and "onnx unfit: loses 0.8 points" in serving.reason


def test_auto_serves_torch_when_the_exports_were_never_judged(tmp_path: Path) -> None:
    serving = resolve_backend(_checkpoint(tmp_path, None), "auto", device="cpu")
    assert serving.backend == "torch"
    assert "not measured" in serving.reason and "triage export" in serving.reason


def test_auto_skips_a_fit_export_whose_file_is_missing(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, {"onnx": (True, "same"), "onnx-int8": (True, "fine")})
    (folder / ONNX_FILES["onnx-int8"]).unlink()
    serving = resolve_backend(folder, "auto", device="cpu")
    assert serving.backend == "onnx" and "model.int8.onnx missing" in serving.reason


def test_explicit_backends_win_over_verdicts(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, {"onnx": (False, "bad"), "onnx-int8": (False, "bad")})
    assert resolve_backend(folder, "onnx-int8").backend == "onnx-int8"
    assert resolve_backend(folder, "onnx").reason == "set explicitly"
    torch_cpu = resolve_backend(folder, "torch", device="cpu")
    assert (torch_cpu.backend, torch_cpu.precision, torch_cpu.reason) == ("torch", "fp32", "set explicitly")
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend(folder, "tensorrt", device="cpu")  # type: ignore[arg-type]


@pytest.mark.parametrize(("bf16", "precision"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_serves_torch_in_half_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16: bool, precision: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    folder = _checkpoint(tmp_path, {"onnx": (True, "same"), "onnx-int8": (True, "fine")})
    serving = resolve_backend(folder, "auto", device="cuda")
    assert (serving.backend, serving.device, serving.precision) == ("torch", "cuda", precision)
    assert serving.reason == "auto: CUDA device Test GPU"


def test_unreadable_verdicts_are_refused_with_a_fix(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, None)
    (folder / SERVING_FILE).write_text("{", encoding="utf-8")
    with pytest.raises(CheckpointError, match="triage export"):
        resolve_backend(folder, "auto", device="cpu")


def test_default_device_asks_torch_only_where_a_gpu_driver_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []

    def is_available() -> bool:
        asked.append(True)
        return True

    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    monkeypatch.setattr(classifier, "_GPU_DRIVER_FILES", (str(tmp_path / "nvidiactl"),))
    assert (classifier.default_device(), asked) == ("cpu", [])
    (tmp_path / "nvidiactl").touch()
    assert (classifier.default_device(), asked) == ("cuda", [True])
