"""The pages state what the code does: every dead-letter code is explained, and the README stays short."""

from __future__ import annotations

from pathlib import Path

from schemas.enums import ErrorCode

ROOT = Path(__file__).resolve().parents[2]


def test_every_dead_letter_code_is_explained_on_the_integration_page() -> None:
    page = (ROOT / "docs" / "integration.md").read_text(encoding="utf-8")
    section = page.split("## Dead-letter codes", 1)[1].split("\n## ", 1)[0]
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in section]
    assert not missing, f"docs/integration.md 'Dead-letter codes' does not explain {missing}"


def test_the_readme_is_a_short_guide() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail into docs/ and link to it"
