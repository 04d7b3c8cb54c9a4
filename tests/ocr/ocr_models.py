"""Generated OCR graphs for pipeline tests that need a controllable component."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str] | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_always_180_classifier(path: Path) -> Path:
    """A direction classifier that answers "180" with probability 1 for every crop."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 48, 192])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 2])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0),  # [n]
        helper.make_node("Unsqueeze", ["m", "axis1"], ["m1"]),  # [n, 1]
        helper.make_node("Mul", ["m1", "zero"], ["z"]),  # zeros [n, 1]
        helper.make_node("Add", ["z", "one"], ["o"]),  # ones [n, 1]
        helper.make_node("Concat", ["z", "o"], ["probs"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero"),
        numpy_helper.from_array(np.ones((1, 1), np.float32), "one"),
    ]
    return _save(helper.make_graph(nodes, "cls180", [x], [y], initializer=inits), path)


def build_constant_recogniser(path: Path, classes: int, *, metadata: dict[str, str] | None = None) -> Path:
    """A recogniser ``[n, 3, 48, W] → [n, W/8, classes]`` of uniform probabilities."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 48, "w"])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", "t", classes])
    nodes = [
        helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[48, 8], strides=[48, 8]),  # [n,3,1,W/8]
        helper.make_node("ReduceMean", ["p"], ["q"], axes=[1, 2], keepdims=0),  # [n, W/8]
        helper.make_node("Unsqueeze", ["q", "axis2"], ["q1"]),  # [n, W/8, 1]
        helper.make_node("Mul", ["q1", "zeros"], ["z"]),  # [n, W/8, classes] zeros
        helper.make_node("Add", ["z", "uniform"], ["probs"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([2], np.int64), "axis2"),
        numpy_helper.from_array(np.zeros((1, 1, classes), np.float32), "zeros"),
        numpy_helper.from_array(np.full((1, 1, classes), 1.0 / classes, np.float32), "uniform"),
    ]
    return _save(helper.make_graph(nodes, "rec", [x], [y], initializer=inits), path, metadata)
