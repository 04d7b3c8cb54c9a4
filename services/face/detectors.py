"""Choosing and building a face detector for a session."""

from __future__ import annotations

from collections.abc import Sequence

from services.api import InferenceFailed
from services.face.detection import DEFAULT_INPUT_SIZE, FaceDetector
from services.face.scrfd import ScrfdDetector
from services.face.yunet import YunetDetector
from services.runtimes.base import Session

DETECTOR_FAMILIES: dict[str, type[FaceDetector]] = {"scrfd": ScrfdDetector, "yunet": YunetDetector}
FAMILY_ALIASES: dict[str, str] = {"retinaface": "scrfd", "insightface": "scrfd", "opencv_yunet": "yunet"}


def normalise_family(family: str) -> str:
    """``family`` as a key of :data:`DETECTOR_FAMILIES`, or a ValueError listing them."""
    key = family.strip().lower().replace("-", "_")
    key = FAMILY_ALIASES.get(key, key)
    if key not in DETECTOR_FAMILIES:
        raise ValueError(
            f"unknown face detector family {family!r}; supported: {', '.join(sorted(DETECTOR_FAMILIES))}"
        )
    return key


def sniff_family(session: Session) -> str:
    """The detector family from the graph's outputs: YuNet names them ``cls_8``, ``obj_8``,
    ``bbox_8``, ``kps_8`` …; SCRFD has a multiple of 3 outputs with 1 / 4 / 10 channels."""
    names = {o.name for o in session.outputs}
    if {"cls_8", "obj_8", "bbox_8", "kps_8"} <= names:
        return "yunet"
    channels = [o.shape[-1] if o.shape else None for o in session.outputs]
    if len(channels) >= 3 and len(channels) % 3 == 0 and all(c in (1, 4, 10, None) for c in channels):
        return "scrfd"
    raise InferenceFailed(
        "cannot tell the face detector family from the graph outputs "
        f"{[(o.name, o.shape) for o in session.outputs]}; name it (scrfd or yunet) in "
        "model_info.json task_metadata.tasks.face_recognition.detection.family"
    )


def make_detector(
    session: Session,
    family: str | None = None,
    *,
    input_size: int = DEFAULT_INPUT_SIZE,
    output_names: Sequence[str] | None = None,
) -> FaceDetector:
    """A detector of ``family`` (None = read from the graph) over ``session``.

    ``input_size`` is the longer side the image is scaled to for graphs with dynamic H, W (fixed
    graphs use their own size). ``output_names`` (SCRFD) = the graph outputs to use, kind then
    stride, when the model metadata names them."""
    key = normalise_family(family) if family else sniff_family(session)
    if key == "scrfd":
        return ScrfdDetector(session, input_size=input_size, output_names=output_names)
    return DETECTOR_FAMILIES[key](session, input_size=input_size)
