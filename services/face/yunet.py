"""YuNet, OpenCV's face detector with 5 landmarks (libfacedetection.train; testdata/face/yunet).

Graph: input ``[1, 3, H, W]`` float, **BGR, 0..255** (no mean/std); the ``_dynamic`` export takes
any H, W that are multiples of 32. Outputs per stride s ∈ {8, 16, 32}, each over the
``G = (H/s)·(W/s)`` cells in row-major order: ``cls_s`` ``[1, G, 1]``, ``obj_s`` ``[1, G, 1]``,
``bbox_s`` ``[1, G, 4]``, ``kps_s`` ``[1, G, 10]``. Cell (row r, col c) decodes to
``cx = (c + b0)·s``, ``cy = (r + b1)·s``, ``w = exp(b2)·s``, ``h = exp(b3)·s``, landmark k =
``((c + k0)·s, (r + k1)·s)``, score ``sqrt(clip(cls)·clip(obj))``.

Landmark order (SOURCES.md): the subject's right eye, left eye, nose, right mouth corner, left
mouth corner. Seen in the image the subject's right eye is the image-LEFT one, so this already
is the ArcFace template order (image-left eye first); no reordering is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.api import InferenceFailed
from services.face.detection import DEFAULT_INPUT_SIZE, Candidates, FaceDetector, as_rows
from services.face.params import FaceParams
from services.runtimes.base import Session

STRIDES: tuple[int, ...] = (8, 16, 32)
KINDS: tuple[tuple[str, int], ...] = (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))


class YunetDetector(FaceDetector):
    family = "yunet"
    default_params = FaceParams(score_threshold=0.6, nms_threshold=0.3)
    channel_order = "bgr"
    pixel_scale = 1.0
    pixel_offset = 0.0

    def __init__(self, session: Session, *, input_size: int = DEFAULT_INPUT_SIZE) -> None:
        super().__init__(session, input_size=input_size)
        graph = set(self.output_names)
        named = [f"{kind}_{s}" for kind, _ in KINDS for s in STRIDES]
        if all(n in graph for n in named):
            self.output_names = named
        elif len(self.output_names) != len(named):
            raise InferenceFailed(
                f"YuNet detector needs outputs {named} (or 12 outputs in that order); "
                f"this graph has {self.output_names}"
            )

    def decode(
        self, outputs: Sequence[np.ndarray], input_hw: tuple[int, int], threshold: float
    ) -> Candidates:
        height, width = input_hw
        per_kind = len(STRIDES)
        boxes, scores, marks = [], [], []
        for level, stride in enumerate(STRIDES):
            arrays = {
                kind: as_rows(outputs[k * per_kind + level], ch, f"YuNet output {kind}_{stride}")
                for k, (kind, ch) in enumerate(KINDS)
            }
            cols, rows = width // stride, height // stride
            if any(a.shape[0] != rows * cols for a in arrays.values()):
                raise InferenceFailed(
                    f"YuNet stride {stride}: outputs have {[a.shape[0] for a in arrays.values()]} rows; "
                    f"a {width}×{height} input has {rows * cols} cells"
                )
            score = np.sqrt(np.clip(arrays["cls"][:, 0], 0, 1) * np.clip(arrays["obj"][:, 0], 0, 1))
            idx = np.nonzero(score >= threshold)[0]
            if idx.size == 0:
                continue
            cell = np.stack([idx % cols, idx // cols], axis=1).astype(np.float32)
            b = arrays["bbox"][idx]
            centre = (cell + b[:, :2]) * stride
            half = np.exp(b[:, 2:4]) * stride / 2.0
            boxes.append(np.concatenate([centre - half, centre + half], axis=1))
            marks.append((arrays["kps"][idx].reshape(-1, 5, 2) + cell[:, None, :]) * stride)
            scores.append(score[idx])
        if not scores:
            return Candidates(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2)))
        return Candidates(np.concatenate(boxes), np.concatenate(scores), np.concatenate(marks))
