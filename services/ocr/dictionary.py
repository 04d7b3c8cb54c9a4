"""The recogniser's character dictionary and CTC greedy decoding.

Class indices (PP-OCR): 0 = CTC blank, 1..K = the dictionary's lines in order, K+1 = space (when
the model has the space class, i.e. it has K+2 classes). Each line is one symbol, taken verbatim
(no stripping except the line break); an empty line inside the dictionary is an error (PP-OCR
dictionaries have none, and Python Lumen / Lumen-Hub would disagree on its index,
MODEL_FORMATS §9 #18).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_DICTIONARY_BYTES = 8 * 1024 * 1024


class DictionaryError(ValueError):
    """The dictionary is unusable or does not fit the recogniser."""


@dataclass(frozen=True)
class CharDictionary:
    chars: tuple[str, ...]
    space: bool = True
    source: str = ""

    @classmethod
    def from_text(cls, text: str, *, source: str = "dictionary") -> CharDictionary:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final line break
        chars = []
        for number, line in enumerate(lines, start=1):
            line = line.removesuffix("\r")
            if line == "":
                raise DictionaryError(
                    f"{source}: line {number} is empty; every line must hold one symbol "
                    "(an empty line would shift every later class)"
                )
            chars.append(line)
        if not chars:
            raise DictionaryError(f"{source}: the dictionary has no symbols")
        return cls(tuple(chars), True, source)

    @classmethod
    def from_file(cls, path: Path) -> CharDictionary:
        path = Path(path)
        size = path.stat().st_size
        if size > MAX_DICTIONARY_BYTES:
            raise DictionaryError(f"{path}: {size} bytes; at most {MAX_DICTIONARY_BYTES} allowed")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DictionaryError(f"{path}: not UTF-8 text") from None
        return cls.from_text(text, source=str(path))

    @property
    def num_classes(self) -> int:
        return len(self.chars) + 1 + (1 if self.space else 0)

    def fitted_to(self, num_classes: int) -> CharDictionary:
        """This dictionary for a recogniser with ``num_classes`` outputs (K+2: with the space
        class, K+1: without); anything else is a :class:`DictionaryError`."""
        k = len(self.chars)
        if num_classes == k + 2:
            return self if self.space else CharDictionary(self.chars, True, self.source)
        if num_classes == k + 1:
            return CharDictionary(self.chars, False, self.source)
        raise DictionaryError(
            f"{self.source}: {k} symbols fit a recogniser with {k + 1} or {k + 2} classes "
            f"(blank + symbols [+ space]), but the recogniser has {num_classes}"
        )

    def symbols(self) -> np.ndarray:
        """Index → symbol (object array); index 0 (blank) is the empty string."""
        table = ["", *self.chars] + ([" "] if self.space else [])
        return np.asarray(table, dtype=object)


def ctc_greedy_decode(probs: np.ndarray, symbols: Sequence[str] | np.ndarray) -> list[tuple[str, float]]:
    """Decode ``probs`` ``[B, T, C]``: best class per step, repeats collapsed, blanks (0) dropped.
    Confidence = mean of the kept steps' best probabilities (0.0 for an empty line)."""
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"CTC decoding needs [batch, steps, classes] (got shape {probs.shape})")
    table = np.asarray(symbols, dtype=object)
    if probs.shape[2] != len(table):
        raise DictionaryError(f"recogniser emits {probs.shape[2]} classes; the dictionary has {len(table)}")
    best = probs.argmax(axis=2)
    best_p = np.take_along_axis(probs, best[..., None], axis=2)[..., 0]
    previous = np.concatenate([np.full((best.shape[0], 1), -1), best[:, :-1]], axis=1)
    keep = (best != 0) & (best != previous)
    out = []
    for row in range(best.shape[0]):
        idx = best[row][keep[row]]
        if idx.size == 0:
            out.append(("", 0.0))
            continue
        out.append(("".join(table[idx]), float(best_p[row][keep[row]].mean())))
    return out
