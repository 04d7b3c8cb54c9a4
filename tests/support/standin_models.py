"""Tiny generated ONNX graphs with the signatures of the real default models (insightface
antelopev2, PP-OCRv5), for tests that a real download in the real repository layout loads and
runs. Weights are fixed (seeded), so results are reproducible.

* :func:`build_arcface_like` — ``input.1`` ``[N, 3, 112, 112]`` → ``1333`` ``[N, 512]`` (the
  antelopev2 recogniser's names and shapes): 16×16 average pooling, then a seeded projection.
* :func:`build_db_detector` — ``x`` ``[N, 3, H, W]`` → ``fetch_name_0`` ``[N, 1, H, W]`` (the
  PP-OCRv5 export's names): text probability = sigmoid(−8 · channel mean), so dark ink on a light
  page is text.
* :func:`build_sequence_recogniser` — ``x`` ``[N, 3, 48, W]`` → ``fetch_name_0``
  ``[N, W/8, classes]`` whose first time steps are planted classes (CTC blanks between them), so
  any crop reads as the planted text when the dictionary maps the classes right.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ARCFACE_DIM = 512
PLANTED_PROB = 0.9


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_arcface_like(path: Path, *, seed: int = 5) -> Path:
    weights = np.random.default_rng(seed).standard_normal((3 * 7 * 7, ARCFACE_DIM)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[16, 16], strides=[16, 16]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "projection"], ["1333"]),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_like",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("1333", TensorProto.FLOAT, ["None", ARCFACE_DIM])],
        initializer=[numpy_helper.from_array(weights, "projection")],
    )
    return _save(graph, path)


def build_db_detector(path: Path) -> Path:
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["mean", "gain"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["fetch_name_0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "db_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("fetch_name_0", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        initializer=[numpy_helper.from_array(np.array(-8.0, np.float32), "gain")],
    )
    return _save(graph, path)


def build_sequence_recogniser(path: Path, classes: int, planted: Sequence[int], *, steps: int = 512) -> Path:
    """Time step 2k carries class ``planted[k]`` with probability 0.9; every other step is blank."""
    table = np.full((1, steps, classes), (1.0 - PLANTED_PROB) / (classes - 1), np.float32)
    table[0, :, 0] = PLANTED_PROB  # blank
    for k, cls in enumerate(planted):
        table[0, 2 * k, :] = (1.0 - PLANTED_PROB) / (classes - 1)
        table[0, 2 * k, cls] = PLANTED_PROB
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "width_axis"], ["width"], axis=0),  # [1]
        helper.make_node("Div", ["width", "eight"], ["t"]),  # W / 8
        helper.make_node("Slice", ["table", "zero", "t", "time_axis"], ["steps"]),  # [1, T, C]
        helper.make_node("Gather", ["shape", "batch_axis"], ["n"], axis=0),  # [1]
        helper.make_node("Concat", ["n", "one", "one"], ["repeats"], axis=0),
        helper.make_node("Tile", ["steps", "repeats"], ["fetch_name_0"]),  # [N, T, C]
    ]
    inits = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(np.array([3], np.int64), "width_axis"),
        numpy_helper.from_array(np.array([0], np.int64), "batch_axis"),
        numpy_helper.from_array(np.array([8], np.int64), "eight"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "time_axis"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
    ]
    graph = helper.make_graph(
        nodes,
        "ctc_planted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 48, "w"])],
        [helper.make_tensor_value_info("fetch_name_0", TensorProto.FLOAT, ["n", "t", classes])],
        initializer=inits,
    )
    return _save(graph, path)
