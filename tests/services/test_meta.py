import pytest

from services.api import InvalidInput
from services.meta import meta_bool, meta_float, meta_int, top_k


@pytest.mark.parametrize("value", ["50", "50.0", " 50 ", "5e1"])
def test_numbers_are_read_leniently(value):
    assert meta_int({"face_size_min": value}, "face_size_min", 0) == 50
    assert meta_float({"x": value}, "x", 0.0) == 50.0


def test_missing_or_blank_gives_the_default():
    assert meta_int({}, "k", 7) == 7
    assert meta_float({"k": "  "}, "k", 0.5) == 0.5


@pytest.mark.parametrize("key", ["top_k", "TopK", "topK", "top-k", "lumen.top_k"])
def test_top_k_aliases(key):
    assert top_k({key: "3"}) == 3


def test_top_k_first_alias_wins_and_default():
    assert top_k({"top_k": "2", "topK": "9"}) == 2
    assert top_k({}) == 5


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"top_k": "abc"}, "'top_k' must be a number (got 'abc')"),
        ({"top_k": "2.5"}, "'top_k' must be a whole number"),
        ({"top_k": "0"}, "'top_k' must be from 1 to 1000"),
        ({"top_k": "nan"}, "finite"),
    ],
)
def test_bad_values_name_the_key(meta, needle):
    with pytest.raises(InvalidInput, match=None) as info:
        top_k(meta)
    assert needle in info.value.message


def test_bounds_and_bools():
    with pytest.raises(InvalidInput, match="at least 0"):
        meta_float({"t": "-1"}, "t", 0.5, low=0)
    assert meta_bool({"b": "Yes"}, "b", False) is True
    assert meta_bool({"b": "off"}, "b", True) is False
    with pytest.raises(InvalidInput, match="true or false"):
        meta_bool({"b": "maybe"}, "b", True)
