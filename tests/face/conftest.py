from __future__ import annotations

import pytest

from services.face import FacePipeline, open_face_pipeline
from tests.support.model_dirs import build_yunet_mobilefacenet_dir


@pytest.fixture(scope="session")
def face_model_dir(tmp_path_factory):
    return build_yunet_mobilefacenet_dir(tmp_path_factory.mktemp("yunet-mobilefacenet"))


@pytest.fixture(scope="session")
def face_pipeline(face_model_dir) -> FacePipeline:
    return open_face_pipeline(face_model_dir)
