"""A generated ONNX graph with SCRFD's signature (input ``[1, 3, 640, 640]``; 9 outputs, scores /
box distances / landmark offsets for strides 8, 16, 32, 2 anchors per cell) whose outputs are
planted detections. One planted score is wired to the input: it equals the graph input at
channel 0, pixel (0, 0), so a test can see the colour order and normalisation fed to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32)
ANCHORS = 2
SIZE = 640
# insightface antelopev2 output names, kind then stride (MODEL_FORMATS §5.2)
PACK_NAMES = ("448", "471", "494", "451", "474", "497", "454", "477", "500")


@dataclass(frozen=True)
class Planted:
    stride: int
    col: int
    row: int
    anchor: int
    score: float
    distances: tuple[float, float, float, float]  # l, t, r, b in stride units
    offsets: tuple[float, ...] = field(default=(0.0,) * 10)  # 5 × (dx, dy) in stride units
    from_input: bool = False  # score = the graph input at channel 0, pixel (0, 0)

    @property
    def index(self) -> int:
        cols = SIZE // self.stride
        return (self.row * cols + self.col) * ANCHORS + self.anchor

    @property
    def centre(self) -> tuple[float, float]:
        return float(self.col * self.stride), float(self.row * self.stride)

    def box(self) -> np.ndarray:
        cx, cy = self.centre
        left, top, right, bottom = (d * self.stride for d in self.distances)
        return np.array([cx - left, cy - top, cx + right, cy + bottom])

    def landmarks(self) -> np.ndarray:
        cx, cy = self.centre
        return np.asarray(self.offsets, dtype=np.float64).reshape(5, 2) * self.stride + [cx, cy]


def build_scrfd_model(
    path: Path,
    planted: list[Planted],
    *,
    three_d: bool = False,
    names: tuple[str, ...] = PACK_NAMES,
    order: tuple[int, ...] = tuple(range(9)),
) -> Path:
    """Write the graph; ``order`` permutes the listed outputs (kind-then-stride by default)."""
    nodes = [
        helper.make_node("Slice", ["input.1", "starts", "ends"], ["pixel4d"], name="pixel_slice"),
        helper.make_node("Reshape", ["pixel4d", "shape11"], ["pixel"], name="pixel_reshape"),
    ]
    inits = [
        numpy_helper.from_array(np.zeros(4, np.int64), "starts"),
        numpy_helper.from_array(np.ones(4, np.int64), "ends"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "shape11"),
    ]
    outputs: list[onnx.ValueInfoProto] = []
    produced: list[tuple[str, onnx.ValueInfoProto]] = []
    for k, (kind, channels) in enumerate((("score", 1), ("bbox", 4), ("kps", 10))):
        for level, stride in enumerate(STRIDES):
            n = (SIZE // stride) ** 2 * ANCHORS
            base = np.zeros((n, channels), np.float32)
            if kind == "bbox":
                base[:] = 1.0
            mask = np.zeros((n, 1), np.float32)
            for p in planted:
                if p.stride != stride:
                    continue
                if kind == "score":
                    if p.from_input:
                        mask[p.index, 0] = 1.0
                    else:
                        base[p.index, 0] = p.score
                elif kind == "bbox":
                    base[p.index] = p.distances
                else:
                    base[p.index] = p.offsets
            name = names[k * 3 + level]
            shape = [1, n, channels] if three_d else [n, channels]
            inits.append(numpy_helper.from_array(base.reshape(shape), f"{name}_base"))
            if kind == "score" and mask.any():
                inits.append(numpy_helper.from_array(mask.reshape(shape), f"{name}_mask"))
                nodes.append(helper.make_node("Mul", [f"{name}_mask", "pixel"], [f"{name}_px"]))
                nodes.append(helper.make_node("Add", [f"{name}_base", f"{name}_px"], [name]))
            else:
                nodes.append(helper.make_node("Identity", [f"{name}_base"], [name]))
            produced.append((name, helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)))
    outputs = [produced[i][1] for i in order]
    graph = helper.make_graph(
        nodes,
        "scrfd_planted",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
