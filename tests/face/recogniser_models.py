"""Generated recogniser graphs: the output is the per-channel mean of the input, so a test can
read back exactly what preprocessing produced."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def build_mean_model(
    path: Path, *, batch: int | str = "batch", nhwc_uint8: bool = False, size: int = 112
) -> Path:
    if nhwc_uint8:
        inp = helper.make_tensor_value_info("img", TensorProto.UINT8, [batch, size, size, 3])
        nodes = [
            helper.make_node("Cast", ["img"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["f"], ["emb"], axes=[1, 2], keepdims=0),
        ]
    else:
        inp = helper.make_tensor_value_info("input0", TensorProto.FLOAT, [batch, 3, size, size])
        nodes = [helper.make_node("ReduceMean", ["input0"], ["emb"], axes=[2, 3], keepdims=0)]
    out = helper.make_tensor_value_info("emb", TensorProto.FLOAT, [batch, 3])
    model = helper.make_model(
        helper.make_graph(nodes, "mean", [inp], [out]), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
