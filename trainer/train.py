"""``run_training``: seed → load data → split → tokenize → train → tune thresholds → export → evaluate → publish.

Reads top to bottom like HF ``run_classification.py``. The checkpoint is staged in a hidden folder
under the output root and only becomes ``latest`` once every file, the ONNX exports included, the manifest
last, is written.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from inference.checkpoint import (
    MANIFEST,
    CheckpointError,
    new_version,
    publish,
    read_manifest,
    remove_staging,
    resolve_checkpoint,
)
from inference.decision import Thresholds
from inference.errors import UserError
from schemas.enums import Priority
from schemas.taxonomy import PRIORITIES, Taxonomy
from trainer.augment import noisy_copies, with_context
from trainer.config import TrainArgs
from trainer.data import Split, TicketData, load_data, subsample, training_splits
from trainer.evaluate import METRICS_FILE, evaluate_classifier
from trainer.export import export_for_serving
from trainer.exposure import OUTLIER_LABEL, Outliers, exposure_loss, exposure_texts, outlier_target
from trainer.metrics import predictions, summary
from trainer.modelcard import write_model_card
from trainer.pagerule import RuleTargets
from trainer.scope import Encoded, encode_wordings, fit_scope, ood_sets, reporting_offtopic
from trainer.thresholds import tune_thresholds
from trainer.weightmix import base_encoder_state, choose_mix

if TYPE_CHECKING:
    from inference.classifier import Classifier

__all__ = ["BaseModelError", "run_training"]

log = structlog.get_logger(__name__)

_RETUNABLE = {"high_recall_target", "review_accuracy_target", "scope_flag_budget", "scope_offtopic_flagged",
              "scope_high_recall_target", "scope_hurried_recall_target"}
"""Options that leave the fine-tuned weights as they are: ``--weights-from`` may change them."""


class BaseModelError(UserError):
    """The base model could not be loaded; the message names it and how to point at another."""


def run_training(args: TrainArgs, link_latest: bool = True) -> Path:
    """Fine-tune, tune thresholds on validation, evaluate on test and publish a new checkpoint.

    Returns:
        The published version folder; ``<args.output>/latest`` points at it unless ``link_latest`` is False.
    """
    import transformers

    from inference.classifier import Classifier
    from inference.tokenizer import TextTokenizer
    from inference.torch_model import TorchModel, pick_device

    version = new_version(args.hyperparameters())
    device = pick_device()
    _set_threads(args, device.type)
    transformers.set_seed(args.seed)
    log.info("training_started", version=version, preset=args.preset, device=device.type)

    data = load_data(args.data_dir, args.hub_dataset)
    taxonomy = data.taxonomy
    train_split, val_split = training_splits(data, args.val_fraction, args.seed)
    train_split = subsample(train_split, args.max_train_examples, args.seed)

    args.output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=args.output))
    try:
        weights_from = None
        if args.weights_from:
            model, tokenizer, precision, seconds, weights_from = _trained_weights(args, device)
        else:
            model, tokenizer, precision, seconds = _fine_tune(args, taxonomy, train_split, device, staging)
        tokenizer.save_pretrained(staging)
        taxonomy.write_csv(staging / "taxonomy.csv")
        classifier = Classifier(TorchModel(model, device), TextTokenizer.load(staging, args.max_length), taxonomy,
                                Thresholds(), version, device=str(device), max_length=args.max_length, batch_size=128)
        weight_mix, wordings = None, None
        if args.weight_mix and not weights_from:
            weight_mix, wordings = _mix_with_base(args, classifier, val_split)
        model.save_pretrained(staging, safe_serialization=True)
        wordings = wordings or encode_wordings(classifier, val_split.texts)
        val_probs, val_features = wordings[0]
        tuned = _tune(args, classifier, val_probs, val_split)
        given = ood_sets(args.ood_dir)
        scope = fit_scope(classifier, (train_split, val_split), wordings, tuned, given,
                          RuleTargets(args.scope_high_recall_target, args.scope_hurried_recall_target,
                                      args.scope_offtopic_flagged, args.scope_flag_budget))
        scope.detector.save(staging)
        classifier.thresholds = scope.thresholds
        classifier.thresholds.save(staging / "thresholds.json")
        val_scores = scope.detector.scores(val_features)
        metrics: dict[str, Any] = {
            "version": version,
            "thresholds": classifier.thresholds.model_dump(),
            "validation": summary(
                predictions(val_probs, val_split.intents, taxonomy, classifier.thresholds, val_scores)
            ),
            "scope_fit": scope.report,
            "weight_mix": weight_mix,
            "export": export_for_serving(staging, classifier, val_split, (val_probs, val_scores)),
        }
        if args.evaluate:
            plots = [staging / "plots"] + ([args.results_dir / "plots" / version] if args.results_dir else [])
            reported = reporting_offtopic(given, set(scope.report["fitted_files"]))
            metrics.update(evaluate_classifier(classifier, data, (train_split, val_split), plots, reported,
                                               (scope.train_features, val_features)))
            metrics["data_source"] = data.source
        manifest = _manifest(args, version, data, train_split, val_split, device.type, precision, seconds,
                             weights_from)
        _write_json(staging / METRICS_FILE, metrics)
        if args.results_dir:
            _write_json(args.results_dir / "metrics" / f"{version}.json", metrics)
        write_model_card(staging, manifest, metrics)
        _write_json(staging / MANIFEST, manifest)
        _make_readable(staging)
        final = publish(staging, args.output, version, link=link_latest)
    except BaseException:
        remove_staging(staging)
        raise
    log.info("training_done", version=version, path=str(final), train_seconds=round(seconds, 1))
    return final


def _mix_with_base(
    args: TrainArgs, classifier: Classifier, val_split: Split
) -> tuple[dict[str, Any], list[Encoded]]:
    """Average the fine-tuned encoder with its starting point (``trainer.weightmix``), in place, at the share whose
    intent accuracy is best on validation and its odd-wording copies (mean of the three).

    Returns:
        The choice (for the metrics), and validation and its copies as the kept share encodes them.
    """
    truth = np.array([classifier.taxonomy.intents.index(intent) for intent in val_split.intents])

    def accuracy() -> tuple[float, list[Encoded]]:
        wordings = encode_wordings(classifier, val_split.texts)
        return float(np.mean([(probs.argmax(axis=1) == truth).mean() for probs, _ in wordings])), wordings

    share, scores, wordings = choose_mix(classifier.torch_model.module, base_encoder_state(args.base_model),
                                         accuracy)
    log.info("weights_mixed", share=share, accuracy={f"{k:g}": round(v, 4) for k, v in scores.items()})
    return {"share": share, "accuracy": {f"{k:g}": v for k, v in scores.items()}}, wordings


def _set_threads(args: TrainArgs, device_type: str) -> None:
    """On CPU: ``--threads``, else one thread per core that other processes leave idle (at least one).

    More threads than free cores makes OpenMP workers spin against other processes; on a shared 2-core box
    that slowed training several-fold, while results do not depend on the thread count. Idle cores are sampled
    over half a second: the 1-minute load average still counts an install that has just finished, and
    halved the threads of a fresh machine's first training.
    """
    import psutil
    import torch

    if device_type != "cpu":
        return
    cores = len(os.sched_getaffinity(0))
    busy = psutil.cpu_percent(interval=0.5) / 100 * (psutil.cpu_count() or cores)
    threads = args.threads or max(1, min(cores, round(cores - busy)))
    torch.set_num_threads(threads)
    log.info("cpu_threads", threads=threads, cores=cores, busy_cores=round(busy, 2))


def _fine_tune(
    args: TrainArgs, taxonomy: Taxonomy, train_split: Split, device: Any, workdir: Path
) -> tuple[Any, Any, str, float]:
    """Train the sequence classifier with HF ``Trainer`` on the training split and, unless ``outlier_weight`` is 0, the
    exposure outliers (``trainer.exposure``); returns (model, tokenizer, precision, seconds)."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from inference.pooling import apply_pooling

    intents = taxonomy.intents
    label_of = {name: i for i, name in enumerate(intents)}
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.base_model, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            args.base_model,
            num_labels=len(intents),
            id2label=dict(enumerate(intents)),
            label2id=label_of,
            use_safetensors=True,
            trust_remote_code=False,
        )
        apply_pooling(model, args.pooling)
    except (OSError, ValueError) as exc:
        raise BaseModelError(
            f"cannot load base model {args.base_model!r} (safetensors weights, no remote code): "
            f"{str(exc).splitlines()[0]} — pass --base-model a local HF folder or a reachable hub id"
        ) from exc
    outliers = Outliers([], [])
    if args.outlier_weight > 0:
        outliers, report = exposure_texts(model, tokenizer, train_split, args.max_length, args.seed)
        log.info("outliers_far_from_labels", **report)
    noisy = noisy_copies(train_split, args.typo_share, args.seed)
    mixed = with_context(train_split, outliers.corpus, args.context_share, args.seed)
    texts = train_split.texts + noisy.texts + mixed.texts + outliers.texts
    labels = [label_of[intent] for intent in train_split.intents + noisy.intents + mixed.intents]
    labels += [OUTLIER_LABEL] * len(outliers.texts)
    encoded = tokenizer(texts, truncation=True, max_length=args.max_length)
    examples = [{**{key: encoded[key][i] for key in encoded}, "labels": label} for i, label in enumerate(labels)]
    log.info("training_examples", tickets=len(train_split), noisy_copies=len(noisy), with_context=len(mixed),
             outliers=len(outliers.texts))
    cuda = device.type == "cuda"
    bf16 = cuda and torch.cuda.is_bf16_supported()
    precision = "bf16" if bf16 else "fp16" if cuda else "fp32"
    steps = max(1, int(len(examples) / args.batch_size * args.epochs))
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(workdir / "_trainer"),
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_steps=args.warmup_ratio,
            lr_scheduler_type="linear",
            train_sampling_strategy="group_by_length",
            bf16=bf16,
            fp16=cuda and not bf16,
            use_cpu=not cuda,
            seed=args.seed,
            data_seed=args.seed,
            save_strategy="no",
            eval_strategy="no",
            logging_steps=max(5, steps // 10),
            report_to="none",
            disable_tqdm=False,
        ),
        train_dataset=examples,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_loss_func=exposure_loss(outlier_target(taxonomy), args.outlier_weight, args.label_smoothing),
        optimizers=(_optimizer(model, args), None),
    )
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    shutil.rmtree(workdir / "_trainer", ignore_errors=True)
    log.info("fine_tune_done", steps=result.global_step, loss=round(result.training_loss, 4),
             seconds=round(seconds, 1), precision=precision)
    return model.eval(), tokenizer, precision, seconds


def _trained_weights(args: TrainArgs, device: Any) -> tuple[Any, Any, str, float, str]:
    """An earlier checkpoint's fine-tuned model (and its version), to re-tune thresholds and detector without training.

    Only with the options it was trained with (budgets and targets aside): another seed or validation share
    would put its training texts into the validation split that every threshold is tuned on.
    """
    from transformers import AutoTokenizer

    from inference.pooling import CONFIG_KEY
    from inference.torch_model import load_module

    assert args.weights_from is not None
    source = resolve_checkpoint(args.weights_from)
    manifest = read_manifest(source)
    wanted = args.hyperparameters()
    differ = [key for key, value in manifest["hyperparameters"].items()  # an option since removed cannot differ
              if key not in _RETUNABLE and key in wanted and wanted[key] != value]
    if differ:
        raise CheckpointError(f"{source} was trained with other {', '.join(differ)}: pass its preset and options")
    model = load_module(source).to(device)
    if getattr(model.config, CONFIG_KEY) != args.pooling:
        raise CheckpointError(f"{source} was trained with other pooling: pass its preset and options")
    log.info("weights_reused", source=manifest["version"])
    tokenizer = AutoTokenizer.from_pretrained(source)
    return model.eval(), tokenizer, manifest["precision"], manifest["train_seconds"], manifest["version"]


def _optimizer(model: Any, args: TrainArgs) -> Any:
    """AdamW with the new classification head at ``head_lr_scale`` × lr.

    The head starts from random weights while the encoder is already good, so it needs bigger steps;
    this cut the epochs needed for a usable model roughly in half on Banking77.
    """
    import torch

    head = {id(p) for p in model.classifier.parameters()}
    no_decay = ("bias", "LayerNorm.weight")
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, param in model.named_parameters():
        groups.setdefault((id(param) in head, name.endswith(no_decay)), []).append(param)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": args.lr * (args.head_lr_scale if is_head else 1.0),
                "weight_decay": 0.0 if plain else args.weight_decay,
            }
            for (is_head, plain), params in groups.items()
        ],
        lr=args.lr,
    )


def _tune(args: TrainArgs, classifier: Classifier, val_probs: np.ndarray, val_split: Split) -> Thresholds:
    """High-priority and review thresholds from the validation split only.

    The High threshold keeps its recall on the validation tickets and on a typo copy of each
    (``trainer.augment``): 122 High tickets alone leave one miss to chance, and hurried tickets are where
    recall is lost (tuned on clean validation alone, the full model kept 99.2% there and 98.3% on test). Adding
    the odd-wording copies as well lowered the full preset's bar and paged more off-topic text without keeping
    one more High test ticket: the tickets it misses are confident confusions with another label.
    """
    taxonomy = classifier.taxonomy
    raw = predictions(val_probs, val_split.intents, taxonomy, Thresholds())
    typos = noisy_copies(val_split, 1.0, args.seed)
    typo_probs, _ = classifier.encode(typos.texts)
    both = predictions(np.concatenate([val_probs, typo_probs]), val_split.intents + typos.intents, taxonomy,
                       Thresholds())
    thresholds = tune_thresholds(
        both.p_high,
        both.priority.true == PRIORITIES.index(Priority.HIGH),
        raw.category_confidence,
        raw.category.true == raw.category.pred,
        recall_target=args.high_recall_target,
        accuracy_target=args.review_accuracy_target,
    )
    log.info("thresholds_tuned", high_priority=round(thresholds.high_priority, 4), review=round(thresholds.review, 4))
    return thresholds


def _manifest(
    args: TrainArgs,
    version: str,
    data: TicketData,
    train_split: Split,
    val_split: Split,
    device: str,
    precision: str,
    train_seconds: float,
    weights_from: str | None,
) -> dict[str, Any]:
    import torch
    import transformers

    return {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "base_model": args.base_model,
        "max_length": args.max_length,
        "hyperparameters": args.hyperparameters(),
        "data": {"source": data.source, "train": len(train_split), "validation": len(val_split),
                 "test": len(data.test), "labels": len(data.taxonomy.rules),
                 "categories": list(data.taxonomy.categories),
                 # drift's reference: the live category mix is compared with this (feedback/metrics.py)
                 "validation_categories": _category_shares(val_split, data.taxonomy)},
        "device": device,
        "precision": precision,
        "train_seconds": round(train_seconds, 1),
        "weights_from": weights_from,
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
    }


def _category_shares(split: Split, taxonomy: Taxonomy) -> dict[str, float]:
    counts = Counter(taxonomy.rule(intent).category for intent in split.intents)
    return {category: round(counts[category] / len(split), 6) for category in taxonomy.categories if counts[category]}


def _make_readable(folder: Path) -> None:
    """World-readable files (save_pretrained writes 0600 temp files) so a non-root serving image can load them."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
