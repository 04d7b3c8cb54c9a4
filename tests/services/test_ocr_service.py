"""The ``ocr`` service through the host: real onnxruntime, the real PP-OCRv4 det/cls/rec weights
and text images from testdata, encoded bytes in, ocr_v1 out."""

from __future__ import annotations

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from services.api import HostSettings, InferenceRequest, InvalidInput, ServiceState, ServiceUnavailable
from services.host import ServiceHost
from services.ocr.service import OcrService
from services.service import ModelUnavailable
from tests.ocr.ocr_models import build_constant_recogniser
from tests.ocr.textcompare import same
from tests.services.conftest import wait_for_state
from tests.services.face_ocr_support import OCR_MODEL, encoded, photo_bytes, service_spec, sideways_with_exif
from tests.support.model_dirs import build_ppocr_dir, link_or_copy
from tests.support.testdata import expected, shared_data

pytestmark = pytest.mark.asyncio(loop_scope="module")

EN = "images/text/ocr_rendered_en.png"
RENDERED = {
    EN: ["Hello World 2024", "Home AI inference node", "Invoice No. 48213"],
    "images/text/ocr_rendered_zh.png": ["欢迎回家 智能家居", "温度 23.5°C 湿度 41%"],
    "images/text/ocr_rendered_en_rot180.png": [
        "Invoice No. 48213",
        "Home AI inference node",
        "Hello World 2024",
    ],
}


@pytest.fixture(scope="module")
def ocr_dir(tmp_path_factory):
    return build_ppocr_dir(tmp_path_factory.mktemp("models") / OCR_MODEL)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(ocr_dir):
    host = ServiceHost([service_spec("ocr", OCR_MODEL, ocr_dir)], HostSettings())
    yield host
    await host.stop()


def _req(payload: bytes, mime: str = "image/png", **meta: str) -> InferenceRequest:
    return InferenceRequest("ocr", payload, mime, meta)


def _check_boxes(items: list[dict], width: int, height: int) -> None:
    for item in items:
        box = item["box"]
        assert len(box) == 4 and all(isinstance(v, int) for point in box for v in point)
        (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = box
        assert tlx < trx and blx < brx and tly < bly and try_ < bry  # TL, TR, BR, BL
        assert all(0 <= x < width and 0 <= y < height for x, y in box)
        assert 0 < item["confidence"] <= 1


@pytest.mark.parametrize("image", sorted(RENDERED))
async def test_text_images_read_back_in_reading_order(host, image):
    result = await host.infer(_req(photo_bytes(image)))
    assert result.schema == "ocr_v1" and result.mime == "application/json;schema=ocr_v1"
    data = result.data
    texts = [item["text"] for item in data["items"]]
    assert data["count"] == len(texts) == len(RENDERED[image]) and data["model_id"] == OCR_MODEL
    assert all(same(want, got) for want, got in zip(RENDERED[image], texts, strict=True)), texts
    _check_boxes(data["items"], *Image.open(shared_data(image)).size)
    result.to_json_bytes()


async def test_boxes_match_the_measured_ones(host):
    result = await host.infer(_req(photo_bytes(EN)))
    truth = expected()["ocr"][EN]["det_min_side_0"]
    for item, line in zip(result.data["items"], truth, strict=True):
        xs, ys = [p[0] for p in item["box"]], [p[1] for p in item["box"]]
        quad = np.asarray(line["box"])
        want = [quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max()]
        assert np.allclose([min(xs), min(ys), max(xs), max(ys)], want, atol=10)


async def test_exif_rotated_image_gives_boxes_in_the_decoded_orientation(host):
    sideways, upright = sideways_with_exif(EN)
    rotated = await host.infer(_req(sideways, "image/jpeg"))
    straight = await host.infer(_req(encoded(upright, "JPEG", quality=95), "image/jpeg"))
    assert [i["text"] for i in rotated.data["items"]] == [i["text"] for i in straight.data["items"]]
    assert rotated.data["count"] == 3
    for a, b in zip(rotated.data["items"], straight.data["items"], strict=True):
        assert np.allclose(a["box"], b["box"], atol=3)
    _check_boxes(rotated.data["items"], upright.width, upright.height)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: photo_bytes("images/text/rapidocr_empty_black.jpg"), id="black-photo"),
        pytest.param(lambda: encoded(Image.new("RGB", (300, 120), "white"), "WEBP"), id="white-webp"),
    ],
)
async def test_an_image_without_text_gives_zero_items(host, payload):
    result = await host.infer(_req(payload(), "image/webp"))
    assert result.data == {"items": [], "count": 0, "model_id": OCR_MODEL}


async def test_meta_thresholds_are_applied_and_parsed_leniently(host):
    rot180 = photo_bytes("images/text/ocr_rendered_en_rot180.png")
    plain = await host.infer(_req(rot180, use_angle_cls="false"))
    assert not any(same(w, i["text"]) for w in RENDERED[EN] for i in plain.data["items"])
    strict = await host.infer(_req(photo_bytes(EN), rec_threshold="0.999"))
    assert strict.data["count"] == 0
    small = await host.infer(_req(photo_bytes(EN), det_limit_side_len="320.0", drop_score="0.0"))
    assert small.data["count"] >= 1
    _check_boxes(small.data["items"], *Image.open(shared_data(EN)).size)  # still original pixels


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"det_threshold": "x"}, r"meta 'det_threshold' must be a number \(got 'x'\)"),
        ({"box_threshold": "2"}, r"'box_threshold' must be from 0 to 1"),
        ({"det_limit_type": "medium"}, r"'det_limit_type' must be one of max, min"),
        ({"use_angle_cls": "perhaps"}, r"'use_angle_cls' must be true or false"),
    ],
)
async def test_bad_meta_is_invalid_input_naming_the_key(host, meta, message):
    with pytest.raises(InvalidInput, match=message):
        await host.infer(_req(photo_bytes(EN), **meta))


async def test_a_bad_image_is_invalid_input(host):
    with pytest.raises(InvalidInput, match="not a decodable image"):
        await host.infer(_req(b"GIF89a not really", "image/gif"))
    with pytest.raises(InvalidInput, match="tensor_width"):
        await host.infer(InferenceRequest("ocr", b"\x00" * 12, "application/x.rgb+uint8"))


async def test_capabilities_name_the_task_model_and_runtime(host):
    await host.infer(_req(encoded(Image.new("RGB", (64, 64), "white"))))
    (cap,) = host.capabilities()
    assert cap.service_name == "ocr" and cap.model_ids == (OCR_MODEL,) and cap.runtime == "onnxrt-cpu"
    (task,) = cap.tasks
    assert task.name == "ocr" and task.aliases == () and task.output_mime == "application/json;schema=ocr_v1"
    assert "det_threshold" in task.limits["meta_keys"] and "application/x.rgb+uint8" in task.input_mimes
    assert cap.extra["state"] == "ready" and cap.extra["dictionary_size"] == "6623"
    assert cap.extra["classifier"] == "yes"


# -------------------------------------------------------------------- lifecycle (own hosts)


async def test_statuses_and_ttl(ocr_dir):
    host = ServiceHost([service_spec("ocr", OCR_MODEL, ocr_dir)], HostSettings(model_idle_ttl_s=0.3))
    seen: list[ServiceState] = []
    host.add_status_listener(lambda status: seen.append(status.state))
    try:
        assert host.statuses()[0].state is ServiceState.NOT_LOADED
        result = await host.infer(_req(photo_bytes("images/text/ocr_rendered_zh.png")))
        assert result.data["count"] == 2
        assert seen[:2] == [ServiceState.LOADING, ServiceState.READY]
        await wait_for_state(host, "ocr", ServiceState.NOT_LOADED, timeout=5)
        assert host.model_slots("ocr")["default"].instance is None
    finally:
        await host.stop()


async def test_a_recogniser_without_any_dictionary_fails_to_load_saying_so(tmp_path):
    folder = build_ppocr_dir(tmp_path / "no-dict", with_classifier=False, with_dictionary=False)
    (folder / "onnx" / "recognition.onnx").unlink()
    build_constant_recogniser(folder / "onnx" / "recognition.onnx", 7)  # no 'character' metadata
    host = ServiceHost([service_spec("ocr", "no-dict", folder)], HostSettings())
    try:
        with pytest.raises(ServiceUnavailable, match="no character dictionary"):
            await host.infer(_req(photo_bytes(EN)))
        status = host.statuses()[0]
        assert status.state is ServiceState.FAILED and "no character dictionary" in status.reason
        assert str(folder) in status.reason  # where it looked ...
        assert "ppocr_keys_v1.txt" in status.reason and "ppocrv5_dict.txt" in status.reason  # ... for what
        assert "task_metadata.tasks.ocr.recognition.character_dict_path" in status.reason  # ... the fix
    finally:
        await host.stop()


async def test_missing_weights_are_named(tmp_path):
    folder = build_ppocr_dir(tmp_path / OCR_MODEL)
    (folder / "onnx" / "classification.onnx").unlink()
    (folder / "onnx" / "detection.onnx").unlink()
    host = ServiceHost([service_spec("ocr", OCR_MODEL, folder)], HostSettings())
    try:
        reason = host.statuses()[0].reason
        assert "onnx/detection.onnx" in reason and "onnx/classification.onnx" in reason
        link_or_copy(shared_data("ocr/ch_PP-OCRv4_det_infer.onnx"), folder / "onnx" / "detection.onnx")
        link_or_copy(
            shared_data("ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx"), folder / "onnx" / "classification.onnx"
        )
        assert (await host.infer(_req(photo_bytes(EN)))).data["count"] == 3
    finally:
        await host.stop()


async def test_rknn_is_refused_with_the_reason(tmp_path, monkeypatch):
    spec = service_spec("ocr", OCR_MODEL, tmp_path, runtime="rknn", rknn_device="rk3588")
    host = ServiceHost([spec], HostSettings())
    try:
        # on any machine (here: not even aarch64) the service's own limit is the reason
        assert "the ocr service cannot run PP-OCR on RKNN" in host.statuses()[0].reason
        assert "aarch64" not in host.statuses()[0].reason
    finally:
        await host.stop()
    # on a board (the RKNN library edge replaced): PP-OCR's dynamic shapes are the reason
    monkeypatch.setattr("services.pipeline_service.check_runtime", lambda runtime, options: None)
    service = OcrService(spec, HostSettings())
    with pytest.raises(ModelUnavailable, match="cannot run PP-OCR on RKNN") as info:
        service.check(spec.models[0])
    assert info.value.retry is False
