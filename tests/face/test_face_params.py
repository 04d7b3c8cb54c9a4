from __future__ import annotations

import pytest

from services.api import InvalidInput
from services.face import FaceParams, ScrfdDetector, YunetDetector


def test_meta_is_read_leniently():
    p = FaceParams.from_meta(
        {
            "detection_confidence_threshold": " 0.7 ",
            "nms_threshold": "0.35",
            "face_size_min": "50.0",
            "face_size_max": "1000",
            "max_faces": "5.0",
        }
    )
    assert p == FaceParams(score_threshold=0.7, nms_threshold=0.35, min_size=50, max_size=1000, max_faces=5)


def test_missing_keys_take_the_family_defaults():
    assert FaceParams.from_meta({}, YunetDetector.default_params) == FaceParams(
        score_threshold=0.6, nms_threshold=0.3
    )
    assert FaceParams.from_meta({"max_faces": ""}, ScrfdDetector.default_params).score_threshold == 0.5


def test_no_limit_spellings():
    assert FaceParams.from_meta({"max_faces": "-1"}).max_faces == 0
    assert FaceParams.from_meta({"max_faces": "0"}).max_faces == 0
    assert FaceParams.from_meta({"face_size_max": "0"}).max_size == 0


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"detection_confidence_threshold": "high"}, "'detection_confidence_threshold' must be a number"),
        ({"detection_confidence_threshold": "1.5"}, "from 0 to 1"),
        ({"nms_threshold": "-0.1"}, "'nms_threshold' must be from 0 to 1"),
        ({"face_size_min": "-3"}, "'face_size_min'"),
        ({"max_faces": "2.5"}, "whole number"),
        ({"face_size_min": "100", "face_size_max": "50"}, "face_size_max (50) must not be smaller"),
    ],
)
def test_bad_meta_names_the_key(meta, needle):
    with pytest.raises(InvalidInput) as info:
        FaceParams.from_meta(meta)
    assert needle in str(info.value)
