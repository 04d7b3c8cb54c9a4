"""CLIP text tokenisation from a Hugging Face ``tokenizer.json``.

Texts are encoded as given (no "a photo of a" rewriting; the tokenizer's own normaliser decides
about case), with the tokenizer's special tokens (start / end of text). A sequence longer than
the context length is cut in the middle of the text so that its trailing special tokens (the
end-of-text token CLIP pools at) survive. Rows are right-padded with ``pad_id`` (0, as
open_clip does). Blocking; runs in an executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class ClipTokenizer:
    def __init__(self, path: Path, context_length: int, *, pad_id: int = 0) -> None:
        from tokenizers import Tokenizer

        if context_length < 2:
            raise ValueError(f"context length must be at least 2 (got {context_length})")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a plain Exception subclass
            raise ValueError(f"{Path(path).name} is not a usable tokenizer.json: {exc}") from exc
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self.context_length = context_length
        self.pad_id = pad_id

    def token_ids(self, text: str) -> list[int]:
        """The ids of one text, truncated to the context length keeping the end-of-text token."""
        encoding = self._tokenizer.encode(text, add_special_tokens=True)
        return self._truncate(list(encoding.ids), list(encoding.special_tokens_mask))

    def _truncate(self, ids: list[int], special: list[int]) -> list[int]:
        limit = self.context_length
        if len(ids) <= limit:
            return ids
        trailing = 0
        while trailing < len(special) and special[len(special) - 1 - trailing]:
            trailing += 1
        trailing = min(trailing, limit - 1)
        return ids[: limit - trailing] + (ids[len(ids) - trailing :] if trailing else [])

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, attention_mask)``, both int64 ``[len(texts), context_length]``."""
        ids = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = self.token_ids(text)
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        return ids, mask
