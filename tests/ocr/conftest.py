from __future__ import annotations

import pytest

from services.ocr import OcrPipeline, open_ocr_pipeline
from tests.support.model_dirs import build_ppocr_dir


@pytest.fixture(scope="session")
def ocr_model_dir(tmp_path_factory):
    return build_ppocr_dir(tmp_path_factory.mktemp("ppocr-v4"))


@pytest.fixture(scope="session")
def ocr_pipeline(ocr_model_dir) -> OcrPipeline:
    return open_ocr_pipeline(ocr_model_dir)


@pytest.fixture(scope="session")
def read_image(ocr_pipeline):
    """``read_image(name, params=None)``: the pipeline's result on ``images/text/<name>``, computed
    once per (name, params) for the whole session."""
    from services.ocr import OcrParams
    from tests.support.testdata import load_rgb, shared_data

    cache: dict = {}

    def read(name: str, params: OcrParams | None = None):
        key = (name, params)
        if key not in cache:
            cache[key] = ocr_pipeline.read(load_rgb(shared_data(f"images/text/{name}")), params)
        return cache[key]

    return read
