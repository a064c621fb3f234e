"""The README's command and layout tables describe the code and the tree as they are."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click

from triage.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _table(section: str) -> list[str]:
    """First cells of the Markdown table under ``## <section>`` (header and rule rows dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, f"README.md has no '## {section}' section"
    rows = [line for line in match.group(1).splitlines() if line.startswith("|")]
    assert len(rows) > 2, f"README.md '## {section}' has no table"
    return [row.split("|")[1].strip() for row in rows[2:]]


def _readme_commands() -> set[tuple[str, ...]]:
    """Each backticked command of the Commands table as (command, subcommand?): `triage data report` → both."""
    named: set[tuple[str, ...]] = set()
    for cell in _table("Commands"):
        for item in re.findall(r"`([^`]+)`", cell):
            words = item.removeprefix("triage ").split()
            sub = [w for w in words[1:2] if re.fullmatch(r"[a-z][a-z-]*", w)]
            named.add((words[0], *sub))
    return named


def test_the_command_table_lists_exactly_what_triage_help_lists() -> None:
    ctx = click.Context(main)
    listed = set(main.list_commands(ctx))
    named = _readme_commands()
    assert {c[0] for c in named} == listed, (
        f"README '## Commands' names {sorted({c[0] for c in named} - listed)} that `triage --help` does not "
        f"list, and misses {sorted(listed - {c[0] for c in named})}"
    )
    for command, *sub in named:
        group = main.get_command(ctx, command)
        if sub:
            assert isinstance(group, click.Group) and sub[0] in group.list_commands(ctx), (
                f"README names `triage {command} {sub[0]}`, which does not exist"
            )


def _git(*args: str) -> str:
    """stdout of a git command in the repository (check-ignore exits 1 when nothing is ignored)."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout


def _top(path: str) -> str:
    """The top-level entry a path lies in: ``docs/schemas/x.json`` → ``docs/``, ``Makefile`` → itself."""
    head, sep, _ = path.partition("/")
    return head + sep


def _top_level_entries() -> set[str]:
    """Top-level files and folders of the work tree: tracked or new, never git-ignored, not hidden."""
    listed = _git("ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    return {_top(path) for path in listed if not path.startswith(".")}


def test_the_layout_table_matches_the_tree() -> None:
    named = {_top(path) for cell in _table("Layout") for path in re.findall(r"`([^`]+)`", cell)}
    tree = _top_level_entries()
    folders = {entry for entry in tree if entry.endswith("/")}
    missing = folders - named
    assert not missing, f"top-level folders missing from README '## Layout': {sorted(missing)}"
    unknown = sorted(named - tree)
    ignored = _git("check-ignore", "--no-index", *unknown).split() if unknown else []
    stale = set(unknown) - set(ignored)
    assert not stale, f"README '## Layout' names {sorted(stale)}, which are neither in the tree nor git-ignored"
