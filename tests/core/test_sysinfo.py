import onnxruntime

from app.core import sysinfo


def test_only_local_execution_providers_count_as_accelerators(monkeypatch):
    # CUDA cannot be installed here; the provider list is the edge we substitute
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "AzureExecutionProvider", "CPUExecutionProvider"],
    )
    accelerators, runtimes = sysinfo._onnxruntime()
    assert accelerators == ["cuda"]
    assert runtimes == [f"onnxruntime {onnxruntime.__version__} (cuda, cpu)"]
