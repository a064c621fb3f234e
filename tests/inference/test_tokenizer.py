"""The serving tokenizer gives the ids and padding transformers' tokenizer gave the model in training."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from inference.tokenizer import TextTokenizer
from trainer.config import default_base_model

MESSY = [
    "", " ", "my card was stolen!!!", "MY CARD WAS STOLEN", "Ünïcödé café naïve résumé", "カードを紛失しました",
    "emoji 💳🔥 please", "tab\tand\nnewline", "x" * 5000, "word " * 300, "<script>alert(1)</script>",
    "$$$ 100.00 EUR -> £", "don't won't can't", "\u200bzero\u200bwidth", "\x00null byte",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base model's tokenizer as training saves it into a checkpoint."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(default_base_model()).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("max_length", [16, 64])
def test_ids_and_padding_match_transformers(saved: Path, data_dir: Path, max_length: int) -> None:
    from transformers import AutoTokenizer

    with (data_dir / "test.csv").open(encoding="utf-8") as f:
        texts = MESSY + [row["text"] for row in csv.DictReader(f)][:500]
    reference = AutoTokenizer.from_pretrained(saved)
    ours = TextTokenizer.load(saved, max_length)

    ids = ours.ids(texts)
    assert ids == reference(texts, truncation=True, max_length=max_length)["input_ids"]
    assert max(map(len, ids)) == max_length
    input_ids, mask = ours.pad(ids[:40])
    padded = reference.pad({"input_ids": ids[:40]}, padding=True, return_tensors="np")
    np.testing.assert_array_equal(input_ids, padded["input_ids"])
    np.testing.assert_array_equal(mask, padded["attention_mask"])


def test_left_padding_follows_the_tokenizer_config(saved: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(saved)
    reference.padding_side = "left"
    reference.save_pretrained(tmp_path)
    ours = TextTokenizer.load(tmp_path, 32)
    ids = ours.ids(MESSY)
    input_ids, mask = ours.pad(ids)
    padded = reference.pad({"input_ids": ids}, padding=True, return_tensors="np")
    np.testing.assert_array_equal(input_ids, padded["input_ids"])
    np.testing.assert_array_equal(mask, padded["attention_mask"])
    assert mask[:, -1].all() and not mask[:, 0].all()


def test_a_pad_token_missing_from_the_vocabulary_is_refused(saved: Path, tmp_path: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((saved / name).read_bytes())
    config = (tmp_path / "tokenizer_config.json").read_text(encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(config.replace('"[PAD]"', '"<nope>"'), encoding="utf-8")
    with pytest.raises(ValueError, match="<nope>"):
        TextTokenizer.load(tmp_path, 32)
