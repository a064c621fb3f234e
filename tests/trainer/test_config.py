"""Presets fill what the caller leaves out; explicit values win; settings come from TRIAGE_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trainer.config import BEST_BASE_MODEL, PRESETS, TrainArgs, TrainerSettings, default_base_model


def test_presets_fill_defaults_and_explicit_values_override() -> None:
    tiny = TrainArgs(preset="tiny")
    assert tiny.epochs == PRESETS["tiny"]["epochs"] and tiny.max_train_examples == PRESETS["tiny"]["max_train_examples"]
    custom = TrainArgs(preset="tiny", epochs=1, lr=None)
    assert custom.epochs == 1 and custom.lr == PRESETS["tiny"]["lr"]
    assert TrainArgs(preset="full").max_length == PRESETS["full"]["max_length"]
    assert TrainArgs().preset == "quick" and TrainArgs().output == Path("models/finetuned")
    assert TrainArgs().base_model == default_base_model()
    assert Path(default_base_model(), "config.json").is_file()


def test_best_preset_is_the_full_recipe_on_the_larger_encoder() -> None:
    best, full = TrainArgs(preset="best"), TrainArgs(preset="full")
    assert best.base_model == BEST_BASE_MODEL != full.base_model
    differ = {k for k, v in best.hyperparameters().items() if full.hyperparameters()[k] != v}
    assert differ == {"preset", "base_model", "lr"}
    assert TrainArgs(preset="best", base_model="/models/mpnet").base_model == "/models/mpnet"  # an offline copy


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValidationError):
        TrainArgs(preset="huge")
    with pytest.raises(ValidationError):
        TrainArgs(epochs=0)
    with pytest.raises(ValidationError):
        TrainArgs(learning_rate=1e-4)  # type: ignore[call-arg]


def test_hyperparameters_hash_the_recipe_not_the_paths(tmp_path: Path) -> None:
    a = TrainArgs(preset="tiny", output=tmp_path / "a", data_dir=tmp_path).hyperparameters()
    b = TrainArgs(preset="tiny", output=tmp_path / "b").hyperparameters()
    assert a == b and "lr" in a and "output" not in a
    assert TrainArgs(preset="tiny", seed=1).hyperparameters() != b


def test_settings_read_triage_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRIAGE_MODELS_DIR", str(tmp_path / "models"))
    settings = TrainerSettings()
    assert settings.data_dir == tmp_path and settings.models_dir == tmp_path / "models"
    assert settings.hub_dataset == "PolyAI/banking77"
