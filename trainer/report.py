"""``triage data report``: what the data set looks like before anyone trains on it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from schemas.taxonomy import PRIORITIES, Taxonomy
from trainer.data import TicketData
from trainer.plots import bar_chart, histogram

__all__ = ["REPORT_FILE", "data_report"]

REPORT_FILE = "data_report.md"


def data_report(data: TicketData, taxonomy: Taxonomy, results_dir: Path, tokenizer_source: str | None = None) -> Path:
    """Write class-balance, length and category/priority PNGs to ``results_dir/plots/data`` and a summary.

    Args:
        data: Both splits.
        taxonomy: Maps labels to category and priority.
        results_dir: Root; the markdown lands at ``results_dir/data_report.md``.
        tokenizer_source: Tokenizer for the token-length figures (default: the packaged base model).
    """
    plots = results_dir / "plots" / "data"
    texts = data.train.texts + data.test.texts
    intents = data.train.intents + data.test.intents
    per_intent = Counter(data.train.intents)
    names = sorted(per_intent, key=lambda name: -per_intent[name])
    bar_chart(names, [per_intent[n] for n in names], plots / "class_balance.png",
              "Train: examples per label", horizontal=True)
    words = [len(t.split()) for t in texts]
    tokens = _token_lengths(texts, tokenizer_source)
    histogram(tokens or words, plots / "text_length.png", "Text length (train + test)",
              "tokens (base-model tokenizer)" if tokens else "words")
    categories = Counter(taxonomy.rule(i).category for i in intents)
    priorities = Counter(taxonomy.rule(i).priority for i in intents)
    bar_chart(list(taxonomy.categories), [categories[c] for c in taxonomy.categories], plots / "categories.png",
              "Examples per category (train + test)")
    bar_chart([p.value for p in PRIORITIES], [priorities[p] for p in PRIORITIES], plots / "priorities.png",
              "Examples per priority (train + test)")

    total = len(intents)
    lines = [
        "# Data report",
        "",
        f"Source: `{data.source}`. Train {len(data.train):,} examples, test {len(data.test):,}; "
        f"{len(per_intent)} labels in train, {len(taxonomy.categories)} categories.",
        "",
        f"- Class balance (train): {min(per_intent.values())}–{max(per_intent.values())} examples per label "
        f"(median {int(np.median(list(per_intent.values())))}); rarest: {names[-1]}, commonest: {names[0]}.",
        f"- Words per text: median {int(np.median(words))}, 95th percentile {int(np.percentile(words, 95))}, "
        f"max {max(words)}.",
    ]
    if tokens:
        lines.append(
            f"- Tokens per text: median {int(np.median(tokens))}, 99th percentile "
            f"{int(np.percentile(tokens, 99))}, max {max(tokens)}; share above 64: "
            f"{np.mean(np.array(tokens) > 64):.2%} (so max_length 64 truncates almost nothing)."
        )
    lines += ["", "| category | examples | share |", "|---|---:|---:|"]
    lines += [f"| {c} | {categories[c]:,} | {categories[c] / total:.1%} |" for c in taxonomy.categories]
    lines += ["", "| priority | examples | share | labels |", "|---|---:|---:|---:|"]
    lines += [
        f"| {p.value} | {priorities[p]:,} | {priorities[p] / total:.1%} | "
        f"{sum(r.priority == p for r in taxonomy.rules)} |"
        for p in PRIORITIES
    ]
    lines += ["", "Plots: " + ", ".join(f"`plots/data/{n}`" for n in (
        "class_balance.png", "text_length.png", "categories.png", "priorities.png")), ""]
    out = results_dir / REPORT_FILE
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


def _token_lengths(texts: list[str], source: str | None) -> list[int]:
    """Token counts with the base tokenizer; empty when it cannot be loaded (word counts are used)."""
    from transformers import AutoTokenizer

    from trainer.config import default_base_model

    try:
        tokenizer = AutoTokenizer.from_pretrained(source or default_base_model(), trust_remote_code=False)
    except (OSError, ValueError):
        return []
    return [len(ids) for ids in tokenizer(texts)["input_ids"]]
