"""An insightface pack on runtime ``rknn``, as it would run on an RK3588 board. The only stand-ins
are the board facts (the device tree) and rknn-toolkit-lite2's ``RKNNLite``, which here runs the
pack's graphs with onnxruntime and records what it was fed: everything else — the service,
the declared fixed signatures, ``RknnSession``, the SCRFD decoder, fixed-batch recognition —
is the real code path."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from services.api import HostSettings, InferenceRequest, ServiceState
from services.host import ServiceHost
from services.runtimes.rknn import BoardInfo
from tests.face.scrfd_model import PACK_NAMES, Planted, build_scrfd_model
from tests.services.face_ocr_support import encoded, service_spec
from tests.support.standin_models import ARCFACE_DIM, build_arcface_like

FACE = Planted(16, 20, 20, 0, 0.9, (3, 3, 3, 3), (-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.8, 1.0, 0.8, 1.0))


class OrtBackedRKNNLite:
    """RKNNLite's interface over onnxruntime (the .rknn files below are ONNX graphs)."""

    NPU_CORE_AUTO, NPU_CORE_0_1_2 = 0, 7
    fed: list[tuple[str, tuple[int, ...], str]] = []

    def __init__(self, verbose: bool = False) -> None:
        self.session: ort.InferenceSession | None = None
        self.name = ""

    def load_rknn(self, path: str) -> int:
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.name = path.rsplit("/", 1)[-1]
        return 0

    def init_runtime(self, core_mask: int | None = None) -> int:
        return 0

    def inference(self, inputs: list[np.ndarray], data_format: list[str] | None = None) -> list[np.ndarray]:
        assert self.session is not None
        self.fed.append((self.name, inputs[0].shape, (data_format or [""])[0]))
        return self.session.run(None, {self.session.get_inputs()[0].name: inputs[0]})

    def release(self) -> None:
        self.session = None


@pytest.fixture
def rk3588(monkeypatch):
    api = types.ModuleType("rknnlite.api")
    api.RKNNLite = OrtBackedRKNNLite
    package = types.ModuleType("rknnlite")
    package.api = api
    monkeypatch.setitem(sys.modules, "rknnlite", package)
    monkeypatch.setitem(sys.modules, "rknnlite.api", api)
    monkeypatch.setattr(
        "services.runtimes.rknn.detect_board", lambda *a: BoardInfo("Linux", "aarch64", "rk3588")
    )
    OrtBackedRKNNLite.fed = []
    return OrtBackedRKNNLite


async def test_an_rknn_face_pack_runs_with_fixed_signatures(tmp_path, rk3588):
    pack = tmp_path / "antelopev2"
    folder = pack / "rknn" / "rk3588"
    folder.mkdir(parents=True)
    build_scrfd_model(folder / "detection.fp16.rknn", [FACE])
    build_arcface_like(folder / "recognition.fp16.rknn")
    info = {
        "name": "antelopev2",
        "runtimes": {
            "rknn": {
                "available": True,
                "files": {"rk3588": ["rknn/rk3588/detection.fp16.rknn", "rknn/rk3588/recognition.fp16.rknn"]},
            }
        },
        "task_metadata": {
            "tasks": {
                "face_recognition": {"pack": "antelopev2", "detection": {"output_names": list(PACK_NAMES)}}
            }
        },
    }
    (pack / "model_info.json").write_text(json.dumps(info), encoding="utf-8")
    spec = service_spec("face", "antelopev2", pack, runtime="rknn", rknn_device="rk3588")
    host = ServiceHost([spec], HostSettings())
    try:
        assert host.statuses()[0].state is ServiceState.NOT_LOADED
        photo = encoded(Image.new("RGB", (1280, 960), (90, 100, 110)), "JPEG")
        result = await host.infer(InferenceRequest("face_recognition", photo, "image/jpeg"))
        faces = result.data["faces"]
        assert result.data["count"] == 1
        # the planted face at [272, 272, 368, 368] of the 640 canvas; the photo was scaled by 0.5
        assert np.allclose(faces[0]["bbox"], [544, 544, 736, 736], atol=0.5)
        assert len(faces[0]["embedding"]) == ARCFACE_DIM
        assert np.linalg.norm(faces[0]["embedding"]) == pytest.approx(1.0, abs=1e-5)
        assert rk3588.fed == [
            ("detection.fp16.rknn", (1, 3, 640, 640), "nchw"),
            ("recognition.fp16.rknn", (1, 3, 112, 112), "nchw"),
        ]
        (cap,) = host.capabilities()
        assert (
            cap.runtime == "rknn-rk3588" and cap.precisions == ("fp16",) and cap.extra["detector"] == "scrfd"
        )
    finally:
        await host.stop()
