"""``triage data check``'s report: rows per split, each label's counts, then every problem with its fix."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from trainer.datacheck import FolderContents

__all__ = ["print_check"]


def print_check(contents: FolderContents, show_warnings: int = 50) -> None:
    """Print the report on stdout; errors all, warnings up to ``show_warnings``."""
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]Data check of {contents.folder}[/bold]")
    if contents.splits:
        layout = "text,label + taxonomy" if contents.layout == "label" else "text,category,priority"
        rows = ", ".join(f"{split} {len(rows):,}" for split, rows in contents.splits.items())
        console.print(f"Layout: {layout}. Rows: {rows}.")
        if "test" not in contents.splits:
            console.print("No test file: 10% of train (stratified) is held out as the test split.")
    taxonomy = contents.taxonomy
    if taxonomy is not None:
        console.print(f"Taxonomy: {contents.taxonomy_source}; {len(taxonomy.rules)} labels, categories "
                      f"{', '.join(taxonomy.categories)}; out-of-scope tickets take "
                      f"{taxonomy.out_of_scope_category!r}.")
        counts = {split: Counter(row.label for row in rows) for split, rows in contents.splits.items()}
        table = Table(title="Labels")
        for column in ("label", "category", "priority", *counts):
            table.add_column(column, justify="right" if column in counts else "left")
        for rule in taxonomy.rules:
            table.add_row(rule.intent, rule.category, rule.priority.value,
                          *(f"{c[rule.intent]:,}" for c in counts.values()))
        console.print(table)
    errors, warnings = contents.errors, contents.warnings
    for finding in errors:
        console.print(f"[red]error[/red] {finding}")
    for finding in warnings[:show_warnings]:
        console.print(f"[yellow]warning[/yellow] {finding}")
    if len(warnings) > show_warnings:
        console.print(f"... and {len(warnings) - show_warnings} more warnings (--show-warnings N)")
    verdict = "[red]refused[/red]: fix the errors" if errors else "[green]ready to train[/green]"
    console.print(f"{len(errors)} errors, {len(warnings)} warnings: {verdict}.")
