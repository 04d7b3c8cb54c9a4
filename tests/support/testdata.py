"""Locating ``../shared/testdata`` (real weights and images, never committed) and reading its
images the way the services do (``services.imaging``: EXIF orientation applied, RGB)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

# The photos the face tests and the benchmark use (expected.json has their measured faces).
FACE_PHOTOS: tuple[str, ...] = (
    "images/faces/astronaut.jpg",
    "images/faces/camera.png",
    "images/faces/faces_collage_4.jpg",
    "images/faces/grace_hopper.jpg",
    "images/no_faces/chelsea.jpg",
    "images/no_faces/coffee.jpg",
    "images/no_faces/rocket.jpg",
)


@cache
def _find() -> Path | None:
    override = os.environ.get("LUMEN_TESTDATA")
    candidates = [Path(override)] if override else []
    candidates += [REPO / ".." / "shared" / "testdata", REPO.parent.parent / "shared" / "testdata"]
    for candidate in candidates:
        if (candidate / "SOURCES.md").is_file():
            return candidate.resolve()
    return None


def shared_data_dir() -> Path:
    """The test data folder, or skip the test saying where it was looked for."""
    found = _find()
    if found is None:
        pytest.skip(
            f"real-model test data not found (looked for {REPO.parent / 'shared' / 'testdata'}; "
            "set LUMEN_TESTDATA to its path)"
        )
    return found


def shared_data(relative: str) -> Path:
    path = shared_data_dir() / relative
    if not path.is_file():
        pytest.skip(f"test data file missing: {path}")
    return path


def expected() -> dict[str, Any]:
    return json.loads(shared_data("expected.json").read_text(encoding="utf-8"))


def load_rgb(path: Path) -> np.ndarray:
    """Decode like the services (:func:`services.imaging.decode_rgb_array`): RGB ``uint8``
    ``(H, W, 3)``, EXIF orientation applied."""
    from services.imaging import decode_rgb_array

    return decode_rgb_array(Path(path).read_bytes())
