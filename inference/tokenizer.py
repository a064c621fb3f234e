"""The checkpoint's tokenizer, run by the ``tokenizers`` library alone.

transformers' fast tokenizer runs this same ``tokenizer.json`` through the same library, but importing it
imports torch: 6 s of a model process's start on 2 cores, for a process that serves ONNX without torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

__all__ = ["TextTokenizer"]


class TextTokenizer:
    """Texts to token ids (special tokens added, truncated) and padded batches, as the model was trained on."""

    def __init__(self, backend: Tokenizer, *, pad_id: int, pad_left: bool, max_length: int) -> None:
        self.backend = backend
        self.pad_id = pad_id
        self.pad_left = pad_left
        backend.no_padding()
        backend.enable_truncation(max_length)

    @classmethod
    def load(cls, folder: Path, max_length: int) -> TextTokenizer:
        """``tokenizer.json`` with the pad token and side of ``tokenizer_config.json`` (BERT's defaults).

        Raises:
            OSError, ValueError: A file is missing or unreadable, or the pad token is not in the vocabulary.
        """
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        pad_token = config.get("pad_token") or "[PAD]"
        pad_id = backend.token_to_id(pad_token)
        if pad_id is None:
            raise ValueError(f"pad token {pad_token!r} is not in {folder / 'tokenizer.json'}")
        return cls(backend, pad_id=pad_id, pad_left=config.get("padding_side") == "left", max_length=max_length)

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.backend.encode_batch(list(texts))]

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """``input_ids`` and ``attention_mask`` (int64) of rows padded to the longest."""
        width = max((len(row) for row in rows), default=0)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if self.pad_left else slice(0, len(row))
            input_ids[i, span] = row
            mask[i, span] = 1
        return input_ids, mask
