from __future__ import annotations

import numpy as np
import pytest

from services.ocr import CharDictionary, DictionaryError, ctc_greedy_decode
from tests.support.testdata import shared_data


def test_lines_are_symbols_verbatim():
    d = CharDictionary.from_text("a\nb\r\n \n中\n")
    assert d.chars == ("a", "b", " ", "中") and d.num_classes == 6
    assert list(d.symbols()) == ["", "a", "b", " ", "中", " "]


@pytest.mark.parametrize("text", ["a\n\nb\n", "\na\n", "a\r\n\r\nb"])
def test_an_empty_line_is_an_error_naming_it(text):
    with pytest.raises(DictionaryError, match=r"line \d+ is empty"):
        CharDictionary.from_text(text, source="keys.txt")


def test_empty_dictionary_is_an_error():
    with pytest.raises(DictionaryError, match="no symbols"):
        CharDictionary.from_text("")


def test_fitting_to_the_recogniser():
    d = CharDictionary.from_text("a\nb\nc")
    assert d.fitted_to(5).space and not d.fitted_to(4).space
    assert len(d.fitted_to(4).symbols()) == 4
    with pytest.raises(DictionaryError, match="3 symbols fit a recogniser with 4 or 5 classes.*has 7"):
        d.fitted_to(7)


def test_the_ppocr_keys_file():
    d = CharDictionary.from_file(shared_data("ocr/ppocr_keys_v1.txt"))
    assert len(d.chars) == 6623 and d.fitted_to(6625).space


def _probs(steps: list[int], classes: int, p: float = 0.9) -> np.ndarray:
    out = np.full((len(steps), classes), (1 - p) / (classes - 1), np.float32)
    out[np.arange(len(steps)), steps] = p
    return out


def test_ctc_greedy_collapses_repeats_and_drops_blanks():
    symbols = CharDictionary.from_text("h\ne\nl\no").symbols()  # 0 blank, 1 h, 2 e, 3 l, 4 o, 5 space
    steps = [0, 1, 1, 2, 3, 3, 0, 3, 4, 0, 5, 4, 4]  # the blank between the l's keeps both
    batch = np.stack([_probs(steps, 6), _probs([0] * len(steps), 6)])
    (text, conf), (empty, zero) = ctc_greedy_decode(batch, symbols)
    assert text == "hello o" and conf == pytest.approx(0.9)
    assert (empty, zero) == ("", 0.0)


def test_confidence_is_the_mean_of_the_kept_steps():
    symbols = CharDictionary.from_text("a\nb").symbols()
    probs = np.zeros((1, 4, 4), np.float32)
    for t, (k, p) in enumerate([(1, 0.6), (1, 0.9), (0, 0.99), (2, 0.8)]):
        probs[0, t, :] = (1 - p) / 3
        probs[0, t, k] = p
    [(text, conf)] = ctc_greedy_decode(probs, symbols)
    assert text == "ab" and conf == pytest.approx((0.6 + 0.8) / 2)  # first step of a run counts


def test_class_count_mismatch_is_an_error():
    with pytest.raises(DictionaryError, match="emits 7 classes"):
        ctc_greedy_decode(np.zeros((1, 2, 7)), CharDictionary.from_text("a\nb").symbols())
