"""Helpers for the face and OCR service tests: service specs over the testdata model folders,
encoded test images (resized, EXIF-rotated), a recording session factory."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from services.api import ModelSpec, ServiceSpec
from services.runtimes import open_session
from tests.support.testdata import shared_data

FACE_MODEL = "yunet-mobilefacenet"
OCR_MODEL = "PP-OCRv4-test"


def service_spec(service: str, model: str, folder: Path, *, runtime: str = "onnx", **kw: Any) -> ServiceSpec:
    return ServiceSpec(
        service, (ModelSpec("default", model, runtime, folder, **kw),), default_model="default"
    )


def photo_bytes(relative: str) -> bytes:
    return shared_data(relative).read_bytes()


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def sideways_with_exif(relative: str) -> tuple[bytes, Image.Image]:
    """The photo stored turned 90° counter-clockwise and tagged EXIF Orientation 6 ("turn 90°
    clockwise to display"), as cameras store portrait shots; and the upright image."""
    upright = Image.open(shared_data(relative)).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(stored, "JPEG", quality=95, exif=exif), upright


@dataclass
class SessionLog:
    """A session factory that records how sessions were opened, then opens them for real."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, path: Path, runtime: str, options: Any, **kwargs: Any) -> Any:
        self.calls.append({"path": Path(path), "runtime": runtime, "options": options, **kwargs})
        return open_session(path, runtime, options, **kwargs)
