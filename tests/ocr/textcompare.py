"""Glyph-tolerant text comparison for OCR tests.

Normalisation: Unicode NFKC (full-width forms, ``℃`` → ``°C``), whitespace removed (the PP-OCR
Chinese recogniser often drops spaces between Latin words), and the glyphs DejaVu Sans draws
alike — capital ``I``, lower-case ``l`` and ``|`` — made one (SOURCES.md: "AI" reads "Al").
The recogniser reads "°C" as "°℃" (SOURCES.md), counted as one "°C"."""

from __future__ import annotations

import unicodedata

_SAME_GLYPH = str.maketrans({"I": "l", "|": "l"})


def normalise(text: str, *, keep_spaces: bool = False) -> str:
    text = unicodedata.normalize("NFKC", text.replace("°℃", "℃"))
    if keep_spaces:
        text = " ".join(text.split())
    else:
        text = "".join(ch for ch in text if not ch.isspace())
    return text.translate(_SAME_GLYPH)


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
            previous = current
    return row[-1]


def errors(reference: str, got: str, *, keep_spaces: bool = False) -> tuple[int, int]:
    """``(character edits, reference length)`` after normalisation."""
    ref, hyp = normalise(reference, keep_spaces=keep_spaces), normalise(got, keep_spaces=keep_spaces)
    return edit_distance(ref, hyp), len(ref)


def same(reference: str, got: str) -> bool:
    return normalise(reference) == normalise(got)
