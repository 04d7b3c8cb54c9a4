"""SCRFD, the detector of the insightface packs (antelopev2, buffalo_l/m/s/sc).

Graph (MODEL_FORMATS §5.2): input ``[1, 3, H, W]`` float, RGB, ``(x − 127.5) / 128``. Outputs, for
strides 8, 16, 32 (and 64, 128 in 5-level exports): scores ``[N, 1]`` (sigmoid applied), box
distances ``[N, 4]`` (left, top, right, bottom, in stride units) and landmark offsets ``[N, 10]``
(5 × dx, dy in stride units), where ``N = (H/s)·(W/s)·A`` with ``A`` anchors per cell (2). The
packs list them grouped by kind, then stride; this decoder groups them by their channel count
(1 / 4 / 10) and orders each kind by ``N`` (most rows = stride 8), so any listing order works.

Anchor centre of row-major cell (x, y) = ``(x·s, y·s)`` (not ``(x + 0.5)·s``, MODEL_FORMATS §9 #6),
repeated for each of its anchors. Box = ``(cx − l·s, cy − t·s, cx + r·s, cy + b·s)``; landmark
k = ``(cx + dxₖ·s, cy + dyₖ·s)``. Landmark order is already the ArcFace template order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.api import InferenceFailed
from services.face.detection import DEFAULT_INPUT_SIZE, Candidates, FaceDetector, as_rows
from services.face.params import FaceParams
from services.runtimes.base import Session

KIND_CHANNELS = {1: "score", 4: "bbox", 10: "kps"}
BASE_STRIDE = 8


class ScrfdDetector(FaceDetector):
    family = "scrfd"
    default_params = FaceParams(score_threshold=0.5, nms_threshold=0.4)
    channel_order = "rgb"
    pixel_scale = 1.0 / 128.0
    pixel_offset = -127.5 / 128.0

    def __init__(
        self,
        session: Session,
        *,
        input_size: int = DEFAULT_INPUT_SIZE,
        output_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(session, input_size=input_size)
        if output_names:
            graph = set(self.output_names)
            missing = [n for n in output_names if n not in graph]
            if not missing:
                self.output_names = list(output_names)
        count = len(self.output_names)
        if count < 3 or count % 3:
            raise InferenceFailed(
                f"SCRFD detector needs score, box and landmark outputs per stride (a multiple of 3 "
                f"outputs, 9 for the insightface packs); this graph has {count}: {self.output_names}"
            )

    def decode(
        self, outputs: Sequence[np.ndarray], input_hw: tuple[int, int], threshold: float
    ) -> Candidates:
        groups: dict[int, list[np.ndarray]] = {c: [] for c in KIND_CHANNELS}
        for name, out in zip(self.output_names, outputs, strict=True):
            channels = int(np.asarray(out).shape[-1])
            if channels not in groups:
                raise InferenceFailed(
                    f"SCRFD output {name!r} has shape {np.shape(out)}; expected last dimension 1 "
                    f"(scores), 4 (boxes) or 10 (landmarks)"
                )
            groups[channels].append(as_rows(out, channels, f"SCRFD output {name!r}"))
        levels = len(groups[1])
        if levels == 0 or len(groups[4]) != levels or len(groups[10]) != levels:
            raise InferenceFailed(
                "SCRFD outputs must come as one score, box and landmark output per stride "
                f"(got {len(groups[1])} score, {len(groups[4])} box, {len(groups[10])} landmark outputs)"
            )
        for kind in groups.values():
            kind.sort(key=lambda rows: -rows.shape[0])
        height, width = input_hw
        boxes, scores, marks = [], [], []
        for level in range(levels):
            stride = BASE_STRIDE * 2**level
            score, dist, kps = groups[1][level], groups[4][level], groups[10][level]
            cols, rows = width // stride, height // stride
            n = score.shape[0]
            if rows * cols == 0 or n % (rows * cols) or dist.shape[0] != n or kps.shape[0] != n:
                raise InferenceFailed(
                    f"SCRFD stride {stride}: {n} score rows do not fit a {cols}×{rows} grid "
                    f"(input {width}×{height}), or box/landmark rows differ ({dist.shape[0]}, {kps.shape[0]})"
                )
            anchors = n // (rows * cols)
            idx = np.nonzero(score[:, 0] >= threshold)[0]
            if idx.size == 0:
                continue
            cell = idx // anchors
            centre = np.stack([(cell % cols) * stride, (cell // cols) * stride], axis=1).astype(np.float32)
            d = dist[idx] * stride
            boxes.append(np.concatenate([centre - d[:, :2], centre + d[:, 2:]], axis=1))
            marks.append(kps[idx].reshape(-1, 5, 2) * stride + centre[:, None, :])
            scores.append(score[idx, 0])
        if not scores:
            return Candidates(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2)))
        return Candidates(np.concatenate(boxes), np.concatenate(scores), np.concatenate(marks))
