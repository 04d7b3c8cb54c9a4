"""Runtimes behind the session interface: onnxruntime, torch (optional), RKNN (mocked board lib)."""

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from services.api import InferenceRequest, ServiceState, ServiceUnavailable
from services.runtimes import RuntimeOptions, RuntimeUnavailable, TensorInfo, check_runtime, open_session
from services.runtimes.onnx import choose_providers, cpu_runs_at_once, provider_label, thread_plan
from services.runtimes.rknn import BoardInfo, RknnSession, check_board
from tests.support.tiny_models import image_bytes

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _add_runtime(model, runtime: str, files) -> None:
    info_path = model.path / "model_info.json"
    info = json.loads(info_path.read_text())
    info["runtimes"][runtime] = {"available": True, "files": files}
    info_path.write_text(json.dumps(info))


# ----------------------------------------------------------------------------- onnxruntime


def test_onnx_session_reports_runtime_and_signature(tiny_clip):
    session = open_session(tiny_clip.path / "onnx" / "vision.fp32.onnx", "onnx")
    assert session.runtime == "onnxrt-cpu"
    (inp,) = session.inputs
    assert (inp.name, inp.dtype, inp.shape[1:]) == ("pixel_values", "float32", (3, 16, 16))
    assert session.outputs[0].static_dims == (None, tiny_clip.dim)
    out = session.run({"pixel_values": np.zeros((2, 3, 16, 16), np.float32)})[0]
    assert out.shape == (2, tiny_clip.dim)
    session.close()
    with pytest.raises(RuntimeError, match="closed"):
        session.run({"pixel_values": np.zeros((1, 3, 16, 16), np.float32)})


def test_provider_preference_labels_and_threads():
    assert choose_providers()[-1] == "CPUExecutionProvider"
    assert "AzureExecutionProvider" not in choose_providers()
    assert provider_label("CoreMLExecutionProvider") == "onnxrt-coreml"
    assert provider_label("DmlExecutionProvider") == "onnxrt-directml"
    small = thread_plan(0, cpus=2)  # spins within a run, stops when it ends
    assert (small.intra_op, small.inter_op, small.spinning, small.spin_after_runs) == (2, 1, True, False)
    big = thread_plan(0, cpus=32)
    assert (big.intra_op, big.spinning, big.spin_after_runs) == (8, True, True)
    assert thread_plan(3, cpus=2).intra_op == 3
    assert thread_plan(0, cpus=2, spin_wait=True).spin_after_runs  # node.cpu_spin_wait overrides
    never = thread_plan(0, cpus=32, spin_wait=False)
    assert not never.spinning and not never.spin_after_runs
    # batches of one key side by side: as many as their threads fit in the CPUs
    assert (cpu_runs_at_once(0, cpus=2), cpu_runs_at_once(1, cpus=4), cpu_runs_at_once(0, cpus=32)) == (
        1,
        4,
        4,
    )
    with pytest.raises(RuntimeUnavailable, match=r"CUDAExecutionProvider.*this onnxruntime offers"):
        choose_providers(["CUDAExecutionProvider"])


@pytest.mark.parametrize(
    ("cpus", "spin_wait", "allow", "stop"),
    [(2, None, "1", "1"), (16, None, "1", "0"), (2, True, "1", "0"), (16, False, "0", "0")],
)
def test_the_session_is_opened_with_the_spin_policy(tiny_clip, monkeypatch, cpus, spin_wait, allow, stop):
    import services.runtimes.onnx as onnx_runtime

    monkeypatch.setattr(onnx_runtime, "usable_cpus", lambda: cpus)
    session = onnx_runtime.OnnxSession(tiny_clip.path / "onnx" / "vision.fp32.onnx", spin_wait=spin_wait)
    options = session._session.get_session_options()

    def entry(key: str, default: str) -> str:  # onnxruntime raises for a key never set
        try:
            return options.get_session_config_entry(key)
        except RuntimeError:
            return default

    spins = entry("session.intra_op.allow_spinning", "1")  # onnxruntime's defaults: spin,
    stops = entry("session.force_spinning_stop", "0")  # and keep spinning after a run
    assert (spins, stops) == (allow, stop)


async def test_unavailable_provider_override_fails_the_service(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()], execution_providers=("CUDAExecutionProvider",))
    status = host.statuses()[0]
    assert status.state is ServiceState.FAILED and "CUDAExecutionProvider" in status.reason


def test_unknown_runtime_is_refused(tmp_path):
    with pytest.raises(RuntimeUnavailable, match="unknown runtime 'tflite'"):
        open_session(tmp_path / "x", "tflite")


# ----------------------------------------------------------------------------- RKNN


def test_rknn_is_unavailable_on_this_machine_with_a_reason():
    if sys.platform == "linux" and __import__("platform").machine() == "aarch64":
        pytest.skip("this machine is aarch64 Linux")
    with pytest.raises(RuntimeUnavailable, match=r"only on aarch64 Linux boards .*this machine is"):
        check_runtime("rknn", RuntimeOptions(rknn_device="rk3588"))
    with pytest.raises(RuntimeUnavailable, match="aarch64"):
        RknnSession(__import__("pathlib").Path("x.rknn"), inputs=(TensorInfo("x", (1, 3), "float32"),))


async def test_rknn_model_shows_failed_in_status_and_capability_never_falls_back(tiny_clip, host_factory):
    if __import__("platform").machine() == "aarch64":
        pytest.skip("this machine is aarch64")
    _add_runtime(
        tiny_clip, "rknn", {"rk3588": ["rknn/rk3588/text.fp16.rknn", "rknn/rk3588/vision.fp16.rknn"]}
    )
    host = host_factory([tiny_clip.service_spec(runtime="rknn", rknn_device="rk3588")])
    status = host.statuses()[0]
    assert status.state is ServiceState.FAILED and "RKNN runs only on aarch64 Linux" in status.reason
    cap = host.capabilities()[0]
    assert cap.runtime == "rknn-rk3588"
    assert cap.extra["state"] == "failed" and "RKNN" in cap.extra["reason"]
    with pytest.raises(ServiceUnavailable, match="RKNN runs only"):
        await host.infer(InferenceRequest("semantic_image_embed", image_bytes(), "image/png"))


def test_board_checks():
    board = BoardInfo("Linux", "aarch64", "rk3588")
    assert check_board("RK3588", board) == "rk3588"
    assert check_board(None, board) == "rk3588"
    with pytest.raises(RuntimeUnavailable, match="built for rk3566 but this board is rk3588"):
        check_board("rk3566", board)
    with pytest.raises(RuntimeUnavailable, match="not supported"):
        check_board("rk9999", BoardInfo("Linux", "aarch64", None))
    with pytest.raises(RuntimeUnavailable, match="needs rknn_device"):
        check_board(None, BoardInfo("Linux", "aarch64", None))


class _FakeRKNNLite:
    """Stands in for rknn-toolkit-lite2's RKNNLite (the one mock: no NPU here)."""

    NPU_CORE_AUTO, NPU_CORE_0, NPU_CORE_1, NPU_CORE_2 = 0, 1, 2, 4
    NPU_CORE_0_1, NPU_CORE_0_1_2, NPU_CORE_ALL = 3, 7, 0xFFFF
    instances: list["_FakeRKNNLite"] = []

    def __init__(self, verbose=False):
        self.calls = []
        self.released = False
        _FakeRKNNLite.instances.append(self)

    def load_rknn(self, path):
        self.calls.append(("load_rknn", path))
        return 0

    def init_runtime(self, core_mask=None):
        self.calls.append(("init_runtime", core_mask))
        return 0

    inference_s = 0.0  # how long an inference takes (to see overlapping calls)

    def inference(self, inputs, data_format=None):
        import time

        self.inside = getattr(self, "inside", 0) + 1
        self.most_inside = max(getattr(self, "most_inside", 0), self.inside)
        try:
            assert not self.released, "inference on a released context"
            self.calls.append(("inference", [a.shape for a in inputs], data_format))
            time.sleep(self.inference_s)
            return [inputs[0].reshape(inputs[0].shape[0], -1)[:, :4] * 2.0]
        finally:
            self.inside -= 1

    def release(self):
        assert not getattr(self, "inside", 0), "released during an inference"
        self.released = True


@pytest.fixture
def fake_rknnlite(monkeypatch):
    package = types.ModuleType("rknnlite")
    api = types.ModuleType("rknnlite.api")
    api.RKNNLite = _FakeRKNNLite
    package.api = api
    monkeypatch.setitem(sys.modules, "rknnlite", package)
    monkeypatch.setitem(sys.modules, "rknnlite.api", api)
    _FakeRKNNLite.instances.clear()
    return _FakeRKNNLite


def test_rknn_session_through_the_session_interface(tmp_path, fake_rknnlite):
    model = tmp_path / "vision.fp16.rknn"
    model.write_bytes(b"rknn")
    inputs = (TensorInfo("pixel_values", (1, 3, 4, 4), "float32"),)
    session = RknnSession(
        model,
        inputs=inputs,
        device="rk3588",
        core_mask="0_1_2",
        board=BoardInfo("Linux", "aarch64", "rk3588"),
    )
    assert session.runtime == "rknn-rk3588" and session.inputs == inputs
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    (out,) = session.run({"pixel_values": x})
    np.testing.assert_array_equal(out, x.reshape(1, -1)[:, :4] * 2.0)
    rknn = fake_rknnlite.instances[0]
    assert rknn.calls[0] == ("load_rknn", str(model))
    assert rknn.calls[1] == ("init_runtime", _FakeRKNNLite.NPU_CORE_0_1_2)
    assert rknn.calls[2] == ("inference", [(1, 3, 4, 4)], ["nchw"])
    session.close()
    assert rknn.released
    # single-core SoCs take no core mask; bad masks are named
    RknnSession(model, inputs=inputs, device="rk3566", board=BoardInfo("Linux", "aarch64", "rk3566"))
    assert fake_rknnlite.instances[1].calls[1] == ("init_runtime", None)
    with pytest.raises(ValueError, match="core mask '5' is not one of"):
        RknnSession(
            model,
            inputs=inputs,
            device="rk3588",
            core_mask="5",
            board=BoardInfo("Linux", "aarch64", "rk3588"),
        )


def test_one_rknn_context_runs_one_inference_at_a_time_and_is_released_after_it(tmp_path, fake_rknnlite):
    from concurrent.futures import ThreadPoolExecutor

    model = tmp_path / "vision.rknn"
    model.write_bytes(b"rknn")
    inputs = (TensorInfo("pixel_values", (1, 3, 4, 4), "float32"),)
    board = BoardInfo("Linux", "aarch64", "rk3588")
    session = RknnSession(model, inputs=inputs, device="rk3588", board=board)
    rknn = fake_rknnlite.instances[0]
    rknn.inference_s = 0.05
    x = {"pixel_values": np.ones((1, 3, 4, 4), np.float32)}
    with ThreadPoolExecutor(3) as pool:  # e.g. max_concurrency_per_model: 2, and more
        runs = [pool.submit(session.run, x) for _ in range(3)]
        while not getattr(rknn, "inside", 0):
            pass
        closing = pool.submit(session.close)  # an unload while runs are queued
        outcomes = []
        for run in runs:
            try:
                outcomes.append(run.result()[0].shape)
            except RuntimeError as exc:
                outcomes.append(str(exc))
        closing.result()
    assert rknn.most_inside == 1 and rknn.released
    assert outcomes[0] == (1, 4)  # the run in progress finished before the release
    assert all(o == (1, 4) or "is closed" in o for o in outcomes)


def test_rknn_without_the_library_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rknnlite", None)
    monkeypatch.setitem(sys.modules, "rknnlite.api", None)
    with pytest.raises(RuntimeUnavailable, match="rknn-toolkit-lite2 is not installed"):
        RknnSession(
            tmp_path / "m.rknn",
            inputs=(TensorInfo("x", (1,), "float32"),),
            board=BoardInfo("Linux", "aarch64", "rk3588"),
        )


# ----------------------------------------------------------------------------- torch


@pytest.mark.skipif(HAVE_TORCH, reason="torch is installed here; this checks the message when it is not")
async def test_torch_runtime_without_torch_is_failed_with_install_hint(tiny_clip, host_factory):
    _add_runtime(tiny_clip, "torch", ["torch/text.fp32.pt", "torch/vision.fp32.pt"])
    host = host_factory([tiny_clip.service_spec(runtime="torch")])
    status = host.statuses()[0]
    assert status.state is ServiceState.FAILED and "lumen-node[torch]" in status.reason
    assert host.capabilities()[0].runtime == "torch-unavailable"


@pytest.mark.torch
async def test_onnx_and_torch_copies_give_the_same_embeddings(tiny_clip, host_factory):
    torch = pytest.importorskip("torch", reason="torch is an optional extra, not in the default install")

    class Vision(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.from_numpy(tiny_clip.vision_weight))
            self.b = torch.nn.Parameter(torch.from_numpy(tiny_clip.vision_bias))

        def forward(self, pixels):
            return pixels.flatten(1) @ self.w + self.b

    class Text(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.e = torch.nn.Parameter(torch.from_numpy(tiny_clip.token_embeddings))
            self.p = torch.nn.Parameter(torch.from_numpy(tiny_clip.text_projection))

        def forward(self, ids):
            return self.e[ids].sum(1) @ self.p

    (tiny_clip.path / "torch").mkdir()
    torch.jit.save(torch.jit.script(Vision()), str(tiny_clip.path / "torch" / "vision.fp32.pt"))
    torch.jit.save(torch.jit.script(Text()), str(tiny_clip.path / "torch" / "text.fp32.pt"))
    _add_runtime(tiny_clip, "torch", ["torch/text.fp32.pt", "torch/vision.fp32.pt"])
    onnx_host = host_factory([tiny_clip.service_spec()])
    torch_host = host_factory(
        [tiny_clip.service_spec(runtime="torch")],
    )
    raw = image_bytes(40, 30)
    for request in (
        InferenceRequest("semantic_image_embed", raw, "image/png"),
        InferenceRequest("semantic_text_embed", b"a dog on the beach"),
    ):
        a = await onnx_host.infer(request)
        b = await torch_host.infer(request)
        np.testing.assert_allclose(a.data["vector"], b.data["vector"], atol=1e-4)
    assert torch_host.statuses()[0].runtime == "torch-cpu"
