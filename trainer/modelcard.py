"""The checkpoint's model card (README.md): what it is, how it was made, how good it is, where not to use it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from schemas.enums import Priority
from schemas.taxonomy import Taxonomy, load_taxonomy
from trainer.config import BEST_BASE_MODEL, default_base_model

__all__ = ["METRIC_ROWS", "format_metric", "write_model_card"]

METRIC_ROWS = (
    ("intent_accuracy", "Intent accuracy"),
    ("intent_macro_f1", "Intent macro-F1"),
    ("category_accuracy", "Category accuracy"),
    ("category_macro_f1", "Category macro-F1"),
    ("priority_accuracy", "Priority accuracy"),
    ("high_recall", "High-priority recall"),
    ("high_precision", "High-priority precision"),
    ("intent_ece", "Intent ECE (15 bins)"),
    ("review_rate", "Share flagged needs_review"),
    ("routed_category_accuracy", "Category accuracy of the rest"),
)


def format_metric(key: str, value: Any) -> str:
    """Percent with two decimals; calibration errors as plain fractions; missing as a dash."""
    if value is None:
        return "–"
    if key.endswith("_ece"):
        return f"{value:.4f}"
    return f"{100 * value:.2f}%"


def _metrics_table(metrics: dict[str, Any]) -> str:
    columns = [(key, title) for key, title in (("validation", "validation"), ("test", "test"),
               ("baseline_tfidf_svm", "TF-IDF + LinearSVC (test)")) if key in metrics]
    lines = ["| metric | " + " | ".join(t for _, t in columns) + " |", "|---|" + "---|" * len(columns)]
    for key, title in METRIC_ROWS:
        cells = [format_metric(key, metrics[c].get(key)) for c, _ in columns]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _scope_section(thresholds: dict[str, Any], hp: dict[str, Any], metrics: dict[str, Any], taxonomy: Taxonomy) -> str:
    """The out-of-scope rule, the data it was set on, and its evaluation when there is one."""
    fit = metrics.get("scope_fit")
    if not fit:
        return "\nNo out-of-scope detector: `out_of_scope` is never set by this checkpoint.\n"
    chosen, alone = fit["chosen"], fit["in_scope_bar_only"]
    fitted = ", ".join(f"{name} ({n})" for name, n in fit["fitted_sets"].items())
    text = f"""
## Out of scope (fitted on validation and off-topic fitting sets only)

- Detector: **{fit["method"]}** on the head's input features (`scope.safetensors`), the best of
  {_compared(fit)} (AUROC, in-scope validation tickets vs generated off-topic texts, seed
  {fit["generated_seed"]}). `scope_score` is the share of in-scope validation tickets at least as unusual
  (1 = typical ticket).
- {_exposure(hp)}
- **out_of_scope** when `scope_score` < **{thresholds["out_of_scope"]:.4f}** (that share of in-scope validation
  tickets is flagged). An out-of-scope ticket becomes {taxonomy.out_of_scope_category}, Low, needs_review.
- It still pages when P(High) ≥ **{thresholds["high_priority_out_of_scope"]:.4f}**{_far(thresholds)}.
- Both thresholds were chosen together (`trainer/pagerule.py`) on the validation split, the same split typed
  in a hurry and written as a message, and these off-topic fitting sets, none of which is reported: {fitted}.
  Points were allowed only when High recall stayed ≥ {100 * fit["required_high_recall"]:.2f}% on validation
  and ≥ {100 * fit["required_hurried_high_recall"]:.2f}% on each odd-wording copy; the chosen one pages the
  fewest off-topic fitting texts, then flags the fewest in-scope tickets that still flag
  {fit["offtopic_flagged_target"]:.0%} of the off-topic ones (at most {fit["flag_budget"]:.0%} of in-scope).
- Chosen point on the fitting sets: {100 * chosen["offtopic_flagged"]:.1f}% of off-topic texts flagged and
  {100 * chosen["offtopic_paged"]:.2f}% paged (mean over the sets), against {100 * alone["offtopic_paged"]:.2f}%
  paged with no out-of-scope rule. **Its cost**: High recall {100 * chosen["high_recall"]:.2f}% on validation
  and {100 * chosen["hurried_high_recall"]:.2f}% on the worst odd-wording copy (the in-scope bar alone keeps
  {100 * alone["high_recall"]:.2f}% and {100 * alone["hurried_high_recall"]:.2f}%), and
  {100 * chosen["in_scope_flagged"]:.2f}% of in-scope validation tickets flagged for review.
"""
    ood = metrics.get("out_of_scope")
    if ood:
        served = ood.get("method", "mahalanobis")
        rows = [f"| {name} | {s['n']} | {100 * s['flagged']:.1f}% | {100 * s['paged']:.1f}% | "
                f"{s['detectors'][served]['auroc']:.4f} | "
                f"{100 * s['detectors'][served]['fpr_at_95_tpr']:.1f}% |" for name, s in ood["sets"].items()]
        test = ood["banking77_test"]
        hurried = ood.get("banking77_test_hurried")
        typed = (f" Typed in a hurry (`trainer/augment.py` `hurried`): intent accuracy "
                 f"{100 * hurried['intent_accuracy']:.2f}%, {100 * hurried['flagged']:.2f}% flagged, High recall "
                 f"{100 * hurried['high_recall']:.2f}%." if hurried else "")
        urgent = ood.get("urgent_reports")
        typed += (f" Urgent reports written outside Banking77 (`trainer/urgent.py`, {urgent['n']}): "
                  f"{100 * urgent['paged']:.1f}% paged, {100 * urgent['flagged']:.1f}% flagged." if urgent else "")
        text += (
            "\nChosen point (bold) and its neighbours on the reported sets (`triage evaluate`):\n\n"
            + _curve_table(ood.get("curve", []))
            + f"\nEvaluation (`triage evaluate`): test split {100 * test['flagged']:.2f}% flagged, High recall "
            f"{100 * test['high_recall']:.2f}% with the rule on.{typed} Off-topic sets vs the test split:\n\n"
            "| set | n | flagged | paged | AUROC | FPR at 95% TPR |\n|---|---:|---:|---:|---:|---:|\n"
            + "\n".join(rows) + "\n"
        )
    return text


def _curve_table(rows: list[dict[str, Any]]) -> str:
    """The rule's trade-off on the reported sets, one row per point, the chosen one in bold."""
    urgent = bool(rows) and "urgent_paged" in rows[0]
    lines = ["| flag threshold | out-of-scope High bar | off-topic flagged | off-topic paged | High recall (test) "
             "| High recall (hurried test) |" + " urgent reports paged |" * urgent,
             "|---:|---:|---:|---:|---:|---:|" + "---:|" * urgent]
    for row in rows:
        cells = [f"{row['flag']:.3f}", f"{row['bar']:.4f}", f"{100 * row['offtopic_flagged']:.1f}%",
                 f"{100 * row['offtopic_paged']:.2f}%", f"{100 * row['high_recall']:.2f}%",
                 f"{100 * row['hurried_high_recall']:.2f}%", *([f"{100 * row['urgent_paged']:.1f}%"] * urgent)]
        lines.append("| " + " | ".join(f"**{c}**" if row["chosen"] else c for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _far(thresholds: dict[str, Any]) -> str:
    far = thresholds.get("far_out_of_scope", 0.0)
    if not far:
        return " (however far from every in-scope ticket: the odd-wording copies needed that)"
    return (f", unless its `scope_score` is below **{far:.4f}** (farther than every in-scope validation ticket: "
            "never paged)")


def _compared(fit: dict[str, Any]) -> str:
    compared = fit.get("validation_separation", {})
    return ", ".join(f"{name} {value['auroc']:.4f}" for name, value in compared.items()) or "one detector"


def _exposure(hp: dict[str, Any]) -> str:
    weight = hp.get("outlier_weight", 0.0)
    if not weight:
        return "Trained on the training split alone (no outlier exposure)."
    return (f"Trained with outlier exposure (weight {weight:g}): ChatterBot corpus lines and the exposure "
            "look-alikes (`trainer/exposure.py`, `trainer/lookalikes.py`), none of them in any fitting or "
            "reported set nor close to a trained label, taught towards the labels that do not page.")


def _export_section(metrics: dict[str, Any]) -> str:
    """The ONNX exports beside the weights, how each did against torch, and which ones may serve."""
    export = metrics.get("export")
    if not export or "backends" not in export:
        return "\n## Exports\n\nNo measured ONNX export: run `triage export --model <this folder>`.\n"
    torch_row = export["torch"]
    rows = [f"| torch fp32 (`{export['files']['torch']}`) | {100 * torch_row['intent_accuracy']:.2f}% | – | 100.0% | "
            f"{100 * torch_row['high_recall']:.2f}% | {export['sizes_mb']['torch']} MB | reference |"]
    for name, row in export["backends"].items():
        rows.append(
            f"| {name} (`{export['files'][name]}`) | {100 * row['intent_accuracy']:.2f}% | "
            f"{row['accuracy_delta_points']:+.2f} | {100 * row['agreement']:.1f}% | {100 * row['high_recall']:.2f}% | "
            f"{export['sizes_mb'][name]} MB | {'**fit**' if row['fit'] else '**unfit**'}: {row['reason']} |"
        )
    return f"""
## Exports (judged on the {export["n"]} validation tickets, the checkpoint's thresholds and scope rule)

An export is fit to serve unless it loses more than {export["max_accuracy_loss_points"]:g} points of intent
accuracy or changes High recall by more than one ticket (the one on a tuned threshold). The worker's default
backend `auto` serves the int8 export on CPU when it is fit, else the fp32 one when fit, else torch; on CUDA,
torch in bf16/fp16. Verdicts: `onnx/serving.json`.

| engine | intent accuracy | Δ points | same intent as torch | High recall | size | serving |
|---|---:|---:|---:|---:|---:|---|
""" + "\n".join(rows) + "\n"


_BANKING77 = """Banking77 is © PolyAI, released under Creative Commons Attribution 4.0 International (CC BY 4.0).
Casanueva, Temčinas, Gerz, Henderson, Vulić: "Efficient Intent Detection with Dual Sentence
Encoders", NLP4ConvAI workshop at ACL 2020."""


def _taxonomy_section(taxonomy: Taxonomy) -> str:
    """Each category's labels, High ones in bold, and the category out-of-scope tickets take."""
    rows = []
    for category in taxonomy.categories:
        labels = [r for r in taxonomy.rules if r.category == category]
        names = ", ".join(f"**{r.intent}**" if r.priority is Priority.HIGH else r.intent for r in labels)
        rows.append(f"| {category} | {len(labels)} | {names or '– (out-of-scope tickets only)'} |")
    return (f"\n## Taxonomy\n\nCategories and their labels (High in bold); out-of-scope tickets take "
            f"**{taxonomy.out_of_scope_category}**.\n\n| category | labels | |\n|---|---:|---|\n"
            + "\n".join(rows) + "\n")


def _pooling(hp: dict[str, Any]) -> str:
    return "first token's state" if hp.get("pooling", "first") == "first" else "mean of the token states"


def _weight_mix(mix: dict[str, Any] | None) -> str:
    if not mix:
        return ""
    return (f"\n- Weights: {mix['share']:.0%} fine-tuned, {1 - mix['share']:.0%} the base encoder's (the share of "
            "fine-tuned weights\n  that scored best on validation and its odd-wording copies, `trainer/weightmix.py`).")


def _base_licence(base_model: str) -> str:
    if base_model == BEST_BASE_MODEL or Path(base_model).name == BEST_BASE_MODEL.split("/")[-1]:
        return "The base model all-mpnet-base-v2 (sentence-transformers) is Apache-2.0."
    if base_model == default_base_model():
        return "The base model all-MiniLM-L6-v2 (sentence-transformers) is Apache-2.0."
    return f"The base model `{base_model}` is under its publisher's licence."


def write_model_card(folder: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Write ``README.md`` into ``folder`` from its manifest and metrics."""
    hp = manifest["hyperparameters"]
    thresholds = metrics["thresholds"]
    data = manifest["data"]
    evaluated = "test" in metrics
    taxonomy = load_taxonomy(folder / "taxonomy.csv")
    banking77 = set(taxonomy.intents) == set(load_taxonomy().intents)
    text = f"""# Ticket-triage model `{manifest["version"]}`

A transformer sequence classifier over {len(taxonomy.rules)} labels{" (the Banking77 intents)" if banking77 else ""}.
The worker turns its label probabilities into a category ({len(taxonomy.categories)}) and a priority (3) by
**summing** label probabilities over `taxonomy.csv` (marginalisation), then applies the thresholds below.
{_taxonomy_section(taxonomy)}
## Base model and training

- Base model: `{manifest["base_model"]}` (all-MiniLM-L6-v2 unless overridden), safetensors only.
- Data: `{data["source"]}`; {data["train"]} training and {data["validation"]} validation
  examples (the validation file, or a stratified split of the train set, seed {hp["seed"]}); {data["test"]}
  test examples, used only for evaluation.
- Preset `{hp["preset"]}`: {hp["epochs"]:g} epochs, batch size {hp["batch_size"]}, learning rate
  {hp["lr"]:g} (head ×{hp["head_lr_scale"]:g}, linear decay, {hp["warmup_ratio"]:.0%} warm-up), weight
  decay {hp["weight_decay"]:g}, label smoothing {hp.get("label_smoothing", 0.0):g}, max length
  {hp["max_length"]} tokens; the head reads the {_pooling(hp)}.{_weight_mix(metrics.get("weight_mix"))}
- Hardware: {manifest["device"]} ({manifest["precision"]}), {manifest["train_seconds"]:.0f} s of training;
  torch {manifest["software"]["torch"]}, transformers {manifest["software"]["transformers"]}.

## Decision thresholds (tuned on validation)

- Priority **High** when P(High) ≥ **{thresholds["high_priority"]:.4f}**: the largest threshold (capped at
  0.5) keeping High-priority recall ≥ {hp["high_recall_target"]:.0%} on validation. Missing a stolen card
  costs far more than a false page.
- **needs_review** when the category probability < **{thresholds["review"]:.4f}**: the smallest threshold
  at which the remaining tickets are categorised with ≥ {hp["review_accuracy_target"]:.0%} accuracy.
{_scope_section(thresholds, hp, metrics, taxonomy)}{_export_section(metrics)}
## Metrics

{_metrics_table(metrics)}

{"Plots: `plots/confusion_intent.png`, `plots/confusion_category.png`, `plots/reliability.png`."
 if evaluated else "Not evaluated on the test split yet: run `triage evaluate --model <this folder>`."}

## Intended use

Routing support messages like those it was trained on to the right queue and surfacing the urgent
ones (the High labels above) first. A human stays in the loop for tickets flagged `needs_review`.

## Limitations

- Trained only on the data above{": short, single-intent, English questions about one neobank's card and "
  "transfer products" if banking77 else ""}. Long e-mails, several issues in one ticket, other languages or other
  products fall outside what it has seen; confidence is then not a reliable guide.
- The category and priority are a fixed mapping of labels (`taxonomy.csv`), not learned separately;
  a wrong intent in the right family still lands in the right queue, a wrong family does not.
- Probabilities are those of the fine-tuned model without temperature scaling; see the ECE.
- Do not use it for decisions about customers (credit, fraud verdicts); it only orders a queue.

## Licence and attribution

{_BANKING77 if banking77 else "The training data's licence is its owner's."} {_base_licence(manifest["base_model"])}
Outlier-exposure lines come from the ChatterBot corpus
(`chatterbot-corpus` on PyPI, Gunther Cox, BSD licence); the look-alike questions (`trainer/lookalikes.py`) are
this project's own text (Apache-2.0).
"""
    path = folder / "README.md"
    tmp = folder / f".README.md.{os.getpid()}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


