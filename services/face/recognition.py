"""Face recognisers: aligned 112×112 crop → L2-normalised embedding.

A :class:`RecogniserSpec` says how a model wants its pixels (channel order, scale, mean, std).
Presets: ``arcface`` (insightface packs: RGB, ``(x − 127.5) / 127.5``) and ``mobilefacenet``
(testdata's MobileFaceNet: RGB, ``x / 255`` then ImageNet mean/std). The graph's own input
decides layout (NCHW or NHWC), dtype, crop size and whether the batch dimension is dynamic
(all crops in one run) or fixed (looped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from services.api import InferenceFailed
from services.face.align import ARCFACE_SIZE, align_face
from services.runtimes.base import Session
from services.vectors import l2_normalise

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_BATCH = 32


@dataclass(frozen=True)
class RecogniserSpec:
    """Per-model preprocessing: graph value = ``(pixel · scale − mean) / std`` per channel, with
    channels in ``color_order``. ``input_size`` is used only when the graph's H, W are dynamic."""

    name: str = "arcface"
    color_order: str = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    input_size: int = ARCFACE_SIZE
    normalises_input: bool = False  # uint8 graphs that normalise inside (fed raw pixels)

    def __post_init__(self) -> None:
        if self.color_order not in ("rgb", "bgr"):
            raise ValueError(f"recogniser color_order must be 'rgb' or 'bgr' (got {self.color_order!r})")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            raise ValueError(
                f"recogniser mean/std must be 3 numbers, std non-zero (got {self.mean}, {self.std})"
            )

    def with_overrides(self, overrides: Mapping[str, Any]) -> RecogniserSpec:
        """This spec with keys of a ``model_info`` ``recognition`` block applied
        (``color_order``, ``scale``, ``mean``, ``std``, ``input_size``)."""
        values: dict[str, Any] = {}
        if "color_order" in overrides:
            values["color_order"] = str(overrides["color_order"]).lower()
        if "scale" in overrides:
            values["scale"] = float(overrides["scale"])
        for key in ("mean", "std"):
            if key in overrides:
                raw = overrides[key]
                seq = [float(raw)] * 3 if isinstance(raw, (int, float)) else [float(v) for v in raw]
                values[key] = tuple(seq)
        if "input_size" in overrides:
            values["input_size"] = int(overrides["input_size"])
        if not values:
            return self
        return replace(self, **values)


ARCFACE_SPEC = RecogniserSpec(name="arcface")
MOBILEFACENET_SPEC = RecogniserSpec(name="mobilefacenet", mean=IMAGENET_MEAN, std=IMAGENET_STD)
RECOGNISER_PRESETS: dict[str, RecogniserSpec] = {"arcface": ARCFACE_SPEC, "mobilefacenet": MOBILEFACENET_SPEC}


def recogniser_preset(name: str) -> RecogniserSpec:
    key = name.strip().lower().replace("-", "").replace("_", "")
    for preset, spec in RECOGNISER_PRESETS.items():
        if preset.replace("_", "") == key:
            return spec
    raise ValueError(f"unknown recogniser preset {name!r}; supported: {', '.join(RECOGNISER_PRESETS)}")


class FaceRecogniser:
    """Embeds faces of an image given their 5 landmarks (pixels of that image)."""

    def __init__(self, session: Session, spec: RecogniserSpec = ARCFACE_SPEC) -> None:
        if not session.inputs or not session.outputs:
            raise InferenceFailed("face recogniser graph needs an input and an output")
        self.session = session
        self.spec = spec
        info = session.inputs[0]
        dims = info.static_dims
        if len(dims) != 4:
            raise InferenceFailed(f"face recogniser input {info.name!r} must be 4-D (got {info.shape})")
        self.input_name = info.name
        self.output_name = session.outputs[0].name
        if dims[1] == 3:
            self.layout, hw = "nchw", (dims[2], dims[3])
        elif dims[3] == 3:
            self.layout, hw = "nhwc", (dims[1], dims[2])
        else:
            raise InferenceFailed(f"face recogniser input {info.name!r} has no 3-channel axis ({info.shape})")
        if hw[0] is not None and hw[1] is not None and hw[0] != hw[1]:
            raise InferenceFailed(f"face recogniser input must be square (got {info.shape})")
        self.size = int(hw[0]) if hw[0] is not None else spec.input_size
        self.batch: int | None = dims[0]  # None = dynamic: every crop in one run
        self.raw_uint8 = info.dtype == "uint8" or spec.normalises_input
        self.input_dtype = np.dtype(
            info.dtype if info.dtype in ("uint8", "float16", "float32") else "float32"
        )
        std = np.asarray(spec.std, dtype=np.float64)
        self._mul = (spec.scale / std).astype(np.float32)
        self._add = (-np.asarray(spec.mean, dtype=np.float64) / std).astype(np.float32)
        out_dims = session.outputs[0].static_dims
        self.embedding_dim: int | None = out_dims[-1] if out_dims else None

    def align(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Aligned crops ``[N, size, size, 3]`` (RGB uint8) for landmarks ``[N, 5, 2]``."""
        crops = np.zeros((len(landmarks), self.size, self.size, 3), dtype=np.uint8)
        for i, marks in enumerate(landmarks):
            try:
                crops[i] = align_face(rgb, marks, self.size)
            except ValueError:
                pass  # degenerate landmarks (all one point): a black crop, a meaningless but valid vector
        return crops

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings ``[N, D]`` float32 of aligned RGB crops."""
        if len(crops) == 0:
            return np.zeros((0, self.embedding_dim or 0), dtype=np.float32)
        tensor = self._tensor(crops)
        step = MAX_BATCH if self.batch is None else int(self.batch)
        parts = []
        for start in range(0, len(tensor), step):
            chunk = tensor[start : start + step]
            real = len(chunk)
            if self.batch is not None and real < step:
                pad = np.zeros((step - real, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out = np.asarray(self.session.run({self.input_name: chunk}, [self.output_name])[0])
            parts.append(out.reshape(out.shape[0], -1)[:real])
        return l2_normalise(np.concatenate(parts))

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Embeddings of the faces whose landmarks ``[N, 5, 2]`` are in pixels of ``rgb``."""
        return self.embed_crops(self.align(rgb, np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)))

    def _tensor(self, crops: np.ndarray) -> np.ndarray:
        x = crops[..., ::-1] if self.spec.color_order == "bgr" else crops
        if self.raw_uint8:
            x = np.ascontiguousarray(x)
            if self.input_dtype != np.uint8:
                x = x.astype(self.input_dtype)
        else:
            x = x.astype(np.float32) * self._mul + self._add
        if self.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x).astype(self.input_dtype, copy=False)
