"""The ``face`` service through the host: real onnxruntime, the real YuNet + MobileFaceNet weights
and photos from testdata, encoded bytes in, face_v1 out."""

from __future__ import annotations

import asyncio
import functools

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from services.api import (
    HostSettings,
    InferenceRequest,
    InvalidInput,
    ServiceState,
    ServiceUnavailable,
)
from services.face.service import FaceService
from services.host import ServiceHost
from tests.services.conftest import wait_for_state
from tests.services.face_ocr_support import (
    FACE_MODEL,
    SessionLog,
    encoded,
    photo_bytes,
    service_spec,
    sideways_with_exif,
)
from tests.support.model_dirs import build_yunet_mobilefacenet_dir
from tests.support.testdata import FACE_PHOTOS, expected, shared_data

pytestmark = pytest.mark.asyncio(loop_scope="module")

DETECTOR = "yunet_s_640_640@0.6"
COLLAGE = "images/faces/faces_collage_4.jpg"


@pytest.fixture(scope="module")
def face_dir(tmp_path_factory):
    return build_yunet_mobilefacenet_dir(tmp_path_factory.mktemp("models") / FACE_MODEL)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(face_dir):
    """One host for the module: the model loads once."""
    host = ServiceHost([service_spec("face", FACE_MODEL, face_dir)], HostSettings())
    yield host
    await host.stop()


def _req(task: str, payload: bytes, mime: str = "image/jpeg", **meta: str) -> InferenceRequest:
    return InferenceRequest(task, payload, mime, meta)


def _nearest(boxes: list[list[float]], target: list[float]) -> list[float]:
    return min(boxes, key=lambda b: max(abs(x - y) for x, y in zip(b, target, strict=True)))


@pytest.mark.parametrize("photo", FACE_PHOTOS)
async def test_face_recognition_on_the_test_photos(host, photo):
    truth = expected()["face_detection"][photo][DETECTOR]
    mime = "image/png" if photo.endswith(".png") else "image/jpeg"
    result = await host.infer(_req("face_recognition", photo_bytes(photo), mime))
    assert result.schema == "face_v1" and result.mime == "application/json;schema=face_v1"
    data = result.data
    assert data["count"] == truth["count"] == len(data["faces"]) and data["model_id"] == FACE_MODEL
    width, height = Image.open(shared_data(photo)).size
    boxes = [face["bbox"] for face in data["faces"]]
    for want in truth["boxes"]:  # boxes are [x1, y1, x2, y2] in pixels of the submitted image
        assert np.allclose(_nearest(boxes, want), want, atol=10)
    for face in data["faces"]:
        x1, y1, x2, y2 = face["bbox"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert 0 < face["confidence"] <= 1 and len(face["landmarks"]) == 10
        assert len(face["embedding"]) == 128
        assert np.linalg.norm(face["embedding"]) == pytest.approx(1.0, abs=1e-5)
    result.to_json_bytes()  # serialisable as sent on the wire


async def test_same_person_is_closer_than_different_people(host):
    """The collage: x≈100 and x≈665 are Eileen Collins, x≈360 and x≈865 Grace Hopper."""
    people: dict[str, list[np.ndarray]] = {"collins": [], "hopper": []}
    collage = await host.infer(_req("face_recognition", photo_bytes(COLLAGE)))
    for face in collage.data["faces"]:
        centre = (face["bbox"][0] + face["bbox"][2]) / 2
        who = "collins" if min(abs(centre - 123), abs(centre - 686)) < 40 else "hopper"
        people[who].append(np.asarray(face["embedding"]))
    for who, photo in (
        ("collins", "images/faces/astronaut.jpg"),
        ("hopper", "images/faces/grace_hopper.jpg"),
    ):
        single = await host.infer(_req("face_recognition", photo_bytes(photo)))
        people[who] += [np.asarray(f["embedding"]) for f in single.data["faces"]]
    assert len(people["collins"]) == len(people["hopper"]) == 3
    same = [a @ b for group in people.values() for i, a in enumerate(group) for b in group[i + 1 :]]
    different = [a @ b for a in people["collins"] for b in people["hopper"]]
    assert min(same) > max(different)


async def test_face_detect_has_the_same_faces_without_embeddings(host):
    full = await host.infer(_req("face_recognition", photo_bytes(COLLAGE)))
    detected = await host.infer(_req("face_detect", photo_bytes(COLLAGE)))
    assert detected.schema == "face_v1" and detected.data["count"] == 4
    assert all("embedding" not in face for face in detected.data["faces"])
    assert [f["bbox"] for f in detected.data["faces"]] == [f["bbox"] for f in full.data["faces"]]
    legacy = await host.infer(_req("face_detect_and_embed", photo_bytes(COLLAGE)))
    assert legacy.data == full.data


async def test_boxes_are_in_pixels_of_the_submitted_image(host):
    """The same photo sent at half size as WebP gives boxes at half the coordinates."""
    image = Image.open(shared_data(COLLAGE)).convert("RGB")
    full = await host.infer(_req("face_detect", encoded(image, "PNG"), "image/png"))
    half_image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    half = await host.infer(_req("face_detect", encoded(half_image, "WEBP", quality=95), "image/webp"))
    assert half.data["count"] == full.data["count"] == 4
    for face in full.data["faces"]:
        want = [v / 2 for v in face["bbox"]]
        assert np.allclose(_nearest([f["bbox"] for f in half.data["faces"]], want), want, atol=5)


async def test_exif_rotated_jpeg_gives_boxes_in_the_decoded_orientation(host):
    sideways, upright = sideways_with_exif("images/faces/grace_hopper.jpg")
    rotated = await host.infer(_req("face_recognition", sideways))
    straight = await host.infer(_req("face_recognition", encoded(upright, "JPEG", quality=95)))
    assert rotated.data["count"] == straight.data["count"] == 1
    box, want = rotated.data["faces"][0]["bbox"], straight.data["faces"][0]["bbox"]
    assert np.allclose(box, want, atol=4)  # the upright frame (512 wide, 600 high), not the stored one
    assert box[2] <= upright.width and box[3] <= upright.height
    cosine = np.dot(rotated.data["faces"][0]["embedding"], straight.data["faces"][0]["embedding"])
    assert cosine > 0.95


async def test_raw_rgb_pixels_give_the_same_faces(host):
    image = Image.open(shared_data("images/faces/astronaut.jpg")).convert("RGB")
    meta = {"tensor_width": str(image.width), "tensor_height": str(image.height), "tensor_channels": "3"}
    raw = await host.infer(InferenceRequest("face_detect", image.tobytes(), "application/x.rgb+uint8", meta))
    png = await host.infer(_req("face_detect", encoded(image, "PNG"), "image/png"))
    assert raw.data == png.data and raw.data["count"] == 1


async def test_meta_thresholds_are_applied_and_parsed_leniently(host):
    collage = photo_bytes(COLLAGE)
    everything = await host.infer(_req("face_detect", collage))
    sizes = sorted(
        max(f["bbox"][2] - f["bbox"][0], f["bbox"][3] - f["bbox"][1]) for f in everything.data["faces"]
    )
    assert len(sizes) == 4 and sizes[1] < 70 < sizes[2]
    large = await host.infer(_req("face_detect", collage, face_size_min="70.0"))
    assert large.data["count"] == 2
    small = await host.infer(_req("face_detect", collage, face_size_max="70", face_size_min="0"))
    assert small.data["count"] == 2
    one = await host.infer(_req("face_detect", collage, max_faces="1.0"))
    assert one.data["count"] == 1 and one.data["faces"][0]["bbox"] == everything.data["faces"][0]["bbox"]
    strict = await host.infer(_req("face_detect", collage, detection_confidence_threshold="1"))
    assert strict.data["count"] == 0
    loose = await host.infer(_req("face_detect", collage, nms_threshold=" 0.3 "))
    assert loose.data["count"] == 4


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"face_size_min": "big"}, r"meta 'face_size_min' must be a number \(got 'big'\)"),
        ({"detection_confidence_threshold": "1.5"}, r"'detection_confidence_threshold' must be from 0 to 1"),
        ({"max_faces": "2.5"}, r"'max_faces' must be a whole number"),
        ({"face_size_min": "80", "face_size_max": "40"}, "face_size_max .* must not be smaller"),
    ],
)
async def test_bad_meta_is_invalid_input_naming_the_key(host, meta, message):
    with pytest.raises(InvalidInput, match=message):
        await host.infer(_req("face_recognition", photo_bytes(COLLAGE), **meta))


@pytest.mark.parametrize(
    ("payload", "mime", "message"),
    [
        (b"this is not an image", "image/jpeg", "not a decodable image"),
        (b"", "image/png", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", "corrupt|not a decodable"),
        (b"hello", "text/plain", "does not take 'text/plain'"),
    ],
)
async def test_bad_images_are_invalid_input(host, payload, mime, message):
    with pytest.raises(InvalidInput, match=message):
        await host.infer(_req("face_recognition", payload, mime))


async def test_capabilities_name_tasks_aliases_model_and_runtime(host):
    await host.infer(_req("face_detect", photo_bytes("images/faces/astronaut.jpg")))
    (cap,) = host.capabilities()
    assert cap.service_name == "face" and cap.model_ids == (FACE_MODEL,)
    assert cap.runtime == "onnxrt-cpu" and cap.precisions == ("fp32",)
    tasks = {t.name: t for t in cap.tasks}
    assert list(tasks) == ["face_recognition", "face_detect"]
    assert tasks["face_recognition"].aliases == ("face_detect_and_embed",)
    assert tasks["face_detect"].aliases == ()
    for task in tasks.values():
        assert task.output_mime == "application/json;schema=face_v1"
        assert task.input_mimes[0] == "image/webp" and "image/jpeg" in task.input_mimes
        assert "face_size_min" in task.limits["meta_keys"]
    assert cap.extra["state"] == "ready" and cap.extra["embedding_dim"] == "128"
    assert cap.extra["detector"] == "yunet"
    assert host.resolve("face_detect_and_embed") == ("face", tasks["face_recognition"])


# -------------------------------------------------------------------- lifecycle (own hosts)


async def test_statuses_go_not_loaded_loading_ready_and_ttl_unloads(face_dir):
    log = SessionLog()
    registry = {"face": functools.partial(FaceService, session_factory=log)}
    settings = HostSettings(model_idle_ttl_s=0.3, intra_op_threads=1)
    host = ServiceHost([service_spec("face", FACE_MODEL, face_dir)], settings, registry=registry)
    seen: list[ServiceState] = []
    host.add_status_listener(lambda status: seen.append(status.state))
    try:
        assert host.statuses()[0].state is ServiceState.NOT_LOADED
        await host.infer(_req("face_detect", photo_bytes("images/faces/astronaut.jpg")))
        assert seen[:2] == [ServiceState.LOADING, ServiceState.READY]
        # both sessions opened through open_session with the host's runtime options
        assert [c["path"].name for c in log.calls] == ["detection.onnx", "recognition.onnx"]
        assert {c["runtime"] for c in log.calls} == {"onnx"}
        assert all(c["options"].intra_op_threads == 1 for c in log.calls)
        await wait_for_state(host, "face", ServiceState.NOT_LOADED, timeout=5)
        assert host.model_slots("face")["default"].instance is None
        again = await host.infer(_req("face_detect", photo_bytes("images/faces/astronaut.jpg")))
        assert again.data["count"] == 1 and len(log.calls) == 4  # loaded again
    finally:
        await host.stop()


async def test_missing_files_are_failed_naming_them_until_they_arrive(tmp_path):
    folder = build_yunet_mobilefacenet_dir(tmp_path / FACE_MODEL)
    recogniser = folder / "onnx" / "recognition.onnx"
    target = recogniser.resolve()
    recogniser.unlink()
    host = ServiceHost([service_spec("face", FACE_MODEL, folder)], HostSettings())
    try:
        status = host.statuses()[0]
        assert status.state is ServiceState.FAILED
        assert "is missing onnx/recognition.onnx" in status.reason
        assert "onnx/recognition.onnx" in host.capabilities()[0].extra["reason"]
        with pytest.raises(ServiceUnavailable, match="onnx/recognition.onnx"):
            await host.infer(_req("face_recognition", photo_bytes("images/faces/astronaut.jpg")))
        recogniser.symlink_to(target)  # the download finished
        result = await host.infer(_req("face_recognition", photo_bytes("images/faces/astronaut.jpg")))
        assert result.data["count"] == 1
    finally:
        await host.stop()


async def test_absent_folder_and_rknn_model_are_failed_with_the_reason(tmp_path):
    absent = service_spec("face", "antelopev2", tmp_path / "antelopev2")
    host = ServiceHost([absent], HostSettings())
    rknn = service_spec("face", "antelopev2", tmp_path / "antelopev2", runtime="rknn", rknn_device="rk3588")
    board = ServiceHost([rknn], HostSettings())
    try:
        assert "does not exist" in host.statuses()[0].reason
        status = board.statuses()[0]
        assert status.state is ServiceState.FAILED and "RKNN runs only on aarch64 Linux" in status.reason
        assert board.capabilities()[0].runtime == "rknn-rk3588"
        with pytest.raises(ServiceUnavailable, match="RKNN"):
            await board.infer(_req("face_detect", photo_bytes("images/faces/astronaut.jpg")))
    finally:
        await asyncio.gather(host.stop(), board.stop())
