"""Face (``face_recognition``) and ``ocr`` latency: our services, called through the service API
(``ServiceHost.infer`` with the encoded image bytes), vs a bare onnxruntime pipeline of the same
models written independently below, in the same run.

    .venv/bin/python bench/face_ocr.py [--quick] [--rounds N] [--threads N] [--only face|ocr]

Every side starts from the encoded file (``Sample.data``) and decodes it itself. Sides:

* ``ours`` — ``ServiceHost.infer`` (decode in the prep executor, pipeline in the inference
  executor under the model's concurrency limit, result as the face_v1 / ocr_v1 JSON object);
* ``pipeline`` — the phase-1 pipeline called directly on the decoded array (the service's cost
  is the difference to ``ours``);
* ``ours-no-verify`` (OCR) — the service with meta ``cls_verify=false``: without the classifier
  safeguard, i.e. the same work as the bare pipeline;
* ``bare`` — onnxruntime + OpenCV only.

Per side it prints per-image latency p50 / p95, images per second and the throughput ratio to
the bare one (target ≥ 0.9). The sides alternate image by image (and who goes first alternates
by round), so noise from other processes hits them alike.

Uses the real weights and photos in ``../shared/testdata`` (YuNet + MobileFaceNet, PP-OCRv4).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.testdata import FACE_PHOTOS  # noqa: E402  (after the path insert)

OCR_IMAGES = [
    "images/text/ocr_rendered_en.png",
    "images/text/ocr_rendered_zh.png",
    "images/text/page.png",
    "images/text/rapidocr_ch_en_num.jpg",
    "images/text/rapidocr_empty_black.jpg",
]


@dataclass(frozen=True)
class Sample:
    name: str
    mime: str
    data: bytes  # the encoded file, as a client would send it


Runner = Callable[[Sample], int]  # returns the number of faces / text lines found


def load_samples(testdata: Path, names: Sequence[str]) -> list[Sample]:
    mimes = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
    return [Sample(name, mimes[Path(name).suffix], (testdata / name).read_bytes()) for name in names]


def decode_pil(data: bytes) -> np.ndarray:
    """What a bare pipeline would do: Pillow, EXIF orientation, RGB."""
    import io

    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


# ----------------------------------------------------------------------------------------------
# Ours: the service API, and the pipelines directly
# ----------------------------------------------------------------------------------------------


class ServiceRunners:
    """One :class:`~services.host.ServiceHost` serving face and OCR on the test model folders,
    driven from this (synchronous) script through one event loop."""

    def __init__(self, face_dir: Path | None, ocr_dir: Path | None, threads: int) -> None:
        from services.api import HostSettings, ModelSpec, ServiceSpec
        from services.host import ServiceHost

        specs = [
            ServiceSpec(name, (ModelSpec("default", folder.name, "onnx", folder),))
            for name, folder in (("face", face_dir), ("ocr", ocr_dir))
            if folder is not None
        ]
        settings = HostSettings(
            execution_providers=("CPUExecutionProvider",), intra_op_threads=threads, model_idle_ttl_s=0
        )
        self.loop = asyncio.new_event_loop()
        self.host = ServiceHost(specs, settings)

    def runner(self, task: str, meta: dict[str, str] | None = None) -> Runner:
        from services.api import InferenceRequest

        def run(sample: Sample) -> int:
            request = InferenceRequest(task, sample.data, sample.mime, meta or {})
            return int(self.loop.run_until_complete(self.host.infer(request)).data["count"])

        return run

    def close(self) -> None:
        self.loop.run_until_complete(self.host.stop())
        self.loop.close()


def _session_opener(threads: int) -> Callable[[Path], object]:
    from services.runtimes.onnx import OnnxSession

    return lambda path: OnnxSession(path, providers=("CPUExecutionProvider",), intra_op_threads=threads)


def pipeline_face(model_dir: Path, threads: int) -> Runner:
    from services.face import open_face_pipeline

    pipeline = open_face_pipeline(model_dir, open_session=_session_opener(threads))
    return lambda sample: pipeline.analyze(decode_pil(sample.data)).count


def pipeline_ocr(model_dir: Path, threads: int) -> Runner:
    from services.ocr import open_ocr_pipeline

    pipeline = open_ocr_pipeline(model_dir, open_session=_session_opener(threads))
    return lambda sample: pipeline.read(decode_pil(sample.data)).count


# ----------------------------------------------------------------------------------------------
# Bare onnxruntime baselines (independent of services/)
# ----------------------------------------------------------------------------------------------


def _ort(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


ARCFACE_DST = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)


def bare_face(testdata: Path, threads: int) -> Runner:
    det = _ort(testdata / "face/yunet/yunet_s_dynamic.onnx", threads)
    rec = _ort(testdata / "face/mobilefacenet/MobileFaceNet.onnx", threads)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def run(sample: Sample) -> int:
        img = decode_pil(sample.data)
        h, w = img.shape[:2]
        scale = 640.0 / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        pw, ph = math.ceil(nw / 32) * 32, math.ceil(nh / 32) * 32
        blob = np.zeros((ph, pw, 3), np.float32)
        blob[:nh, :nw] = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), (nw, nh))
        names = [o.name for o in det.get_outputs()]
        out = dict(zip(names, det.run(None, {"input": blob.transpose(2, 0, 1)[None]}), strict=True))
        rects, scores, marks = [], [], []
        for s in (8, 16, 32):
            cols = pw // s
            cls, obj = out[f"cls_{s}"][0, :, 0], out[f"obj_{s}"][0, :, 0]
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            for i in np.where(score > 0.6)[0]:
                c, r = i % cols, i // cols
                b, k = out[f"bbox_{s}"][0, i], out[f"kps_{s}"][0, i]
                cx, cy, bw, bh = (c + b[0]) * s, (r + b[1]) * s, math.exp(b[2]) * s, math.exp(b[3]) * s
                rects.append([(cx - bw / 2) / scale, (cy - bh / 2) / scale, bw / scale, bh / scale])
                scores.append(float(score[i]))
                marks.append([((c + k[2 * j]) * s / scale, (r + k[2 * j + 1]) * s / scale) for j in range(5)])
        keep = cv2.dnn.NMSBoxes(rects, scores, 0.6, 0.3) if rects else []
        faces = 0
        for i in np.array(keep).reshape(-1):
            if max(rects[i][2], rects[i][3]) < 20:
                continue
            matrix, _ = cv2.estimateAffinePartial2D(
                np.array(marks[i], np.float32), ARCFACE_DST, method=cv2.LMEDS
            )
            crop = cv2.warpAffine(img, matrix, (112, 112))
            x = ((crop.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)[None]
            vec = rec.run(None, {"input0": x})[0][0]
            _ = vec / np.linalg.norm(vec)
            faces += 1
        return faces

    return run


def bare_ocr(testdata: Path, threads: int) -> Runner:
    det = _ort(testdata / "ocr/ch_PP-OCRv4_det_infer.onnx", threads)
    rec = _ort(testdata / "ocr/ch_PP-OCRv4_rec_infer.onnx", threads)
    cls = _ort(testdata / "ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx", threads)
    chars = ["", *rec.get_modelmeta().custom_metadata_map["character"].splitlines(), " "]

    def norm(x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)

    def run(sample: Sample) -> int:
        bgr = cv2.cvtColor(decode_pil(sample.data), cv2.COLOR_RGB2BGR)
        h, w = bgr.shape[:2]
        r = min(1.0, 960 / max(h, w))
        rh, rw = max(32, round(h * r / 32) * 32), max(32, round(w * r / 32) * 32)
        prob = det.run(None, {"x": norm(cv2.resize(bgr, (rw, rh)))[None]})[0][0, 0]
        contours, _ = cv2.findContours((prob > 0.3).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        lines = 0
        for contour in contours[:1000]:
            (cx, cy), (bw, bh), angle = cv2.minAreaRect(contour)
            if min(bw, bh) < 3:
                continue
            mask = np.zeros_like(prob, np.uint8)
            cv2.fillPoly(mask, [cv2.boxPoints(((cx, cy), (bw, bh), angle)).astype(np.int32)], 1)
            if cv2.mean(prob, mask)[0] < 0.5:
                continue
            d = bw * bh * 1.6 / (2 * (bw + bh))
            pts = cv2.boxPoints(((cx, cy), (bw + 2 * d, bh + 2 * d), angle))
            pts[:, 0] = np.clip(pts[:, 0] * w / rw, 0, w - 1)
            pts[:, 1] = np.clip(pts[:, 1] * h / rh, 0, h - 1)
            s = pts.sum(1)
            diff = np.diff(pts, axis=1).ravel()
            quad = np.array(
                [pts[s.argmin()], pts[diff.argmin()], pts[s.argmax()], pts[diff.argmax()]], np.float32
            )
            cw = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2])))
            ch = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
            if cw < 1 or ch < 1:
                continue
            target = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], np.float32)
            crop = cv2.warpPerspective(
                bgr,
                cv2.getPerspectiveTransform(quad, target),
                (cw, ch),
                flags=cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_REPLICATE,
            )
            if ch >= 1.5 * cw:
                crop = np.rot90(crop)
            cwid = min(192, math.ceil(48 * crop.shape[1] / crop.shape[0]))
            cin = np.zeros((1, 3, 48, 192), np.float32)
            cin[0, :, :, :cwid] = norm(cv2.resize(crop, (cwid, 48)))
            p = cls.run(None, {"x": cin})[0][0]
            if p[1] > p[0] and p[1] > 0.9:
                crop = crop[::-1, ::-1]
            rwid = math.ceil(48 * crop.shape[1] / crop.shape[0])
            rin = np.zeros((1, 3, 48, max(320, rwid)), np.float32)
            rin[0, :, :, :rwid] = norm(cv2.resize(np.ascontiguousarray(crop), (rwid, 48)))
            out = rec.run(None, {"x": rin})[0][0]
            idx, best = out.argmax(1), out.max(1)
            keep = (idx != 0) & np.concatenate([[True], idx[1:] != idx[:-1]])
            text = "".join(chars[i] for i in idx[keep])
            if text.strip() and (best[keep].mean() if keep.any() else 0.0) >= 0.5:
                lines += 1
        return lines

    return run


# ----------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------


@dataclass
class Figures:
    latencies: list[float]
    wall: float
    images: int
    per_image: dict[str, list[float]]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def per_second(self) -> float:
        return self.images / self.wall


def measure(samples: list[Sample], sides: dict[str, Runner], rounds: int, warmup: int) -> dict[str, Figures]:
    counts: dict[str, list[int]] = {name: [] for name in sides}
    for _ in range(warmup):
        for sample in samples:
            for name, run in sides.items():
                counts[name].append(run(sample))
    figures = {name: Figures([], 0.0, 0, {}) for name in sides}
    names = list(sides)
    for r in range(rounds):
        for sample in samples:
            for name in names if r % 2 == 0 else names[::-1]:  # who goes first alternates
                run = sides[name]
                start = time.perf_counter()
                run(sample)
                elapsed = time.perf_counter() - start
                fig = figures[name]
                fig.latencies.append(elapsed)
                fig.wall += elapsed
                fig.images += 1
                fig.per_image.setdefault(sample.name, []).append(elapsed)
    found = {name: c[: len(samples)] for name, c in counts.items()}
    print("  found per image: " + "; ".join(f"{n} {v}" for n, v in found.items()))
    return figures


def report(title: str, figures: dict[str, Figures]) -> float:
    print(f"\n{title}")
    width = max(len(n) for n in figures)
    print(f"  {'':{width}s} {'p50 ms':>9s} {'p95 ms':>9s} {'images/s':>9s}")
    for name, fig in figures.items():
        print(f"  {name:{width}s} {fig.p50 * 1000:9.1f} {fig.p95 * 1000:9.1f} {fig.per_second:9.2f}")
    print("  per-image p50 ms: " + ", ".join(figures))
    for image in figures["bare"].per_image:
        values = " ".join(f"{statistics.median(f.per_image[image]) * 1000:8.1f}" for f in figures.values())
        print(f"    {Path(image).name:28s} {values}")
    bare = figures["bare"].per_second
    for name, fig in figures.items():
        if name != "bare":
            print(f"  throughput ratio {name}/bare: {fig.per_second / bare:.2f} (target >= 0.9)")
    return figures["ours"].per_second / bare


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 warm-up and 3 measured rounds")
    parser.add_argument(
        "--rounds", type=int, default=None, help="measured rounds over the images (default 10)"
    )
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = default)")
    parser.add_argument("--testdata", type=Path, default=None, help="default: <repo>/../shared/testdata")
    parser.add_argument("--only", choices=("face", "ocr"), default=None)
    args = parser.parse_args(argv)
    candidates = (
        [args.testdata]
        if args.testdata
        else [REPO.parent / "shared" / "testdata", REPO.parents[1] / "shared" / "testdata"]
    )
    testdata = next((c.resolve() for c in candidates if (c / "SOURCES.md").is_file()), candidates[0])
    if not (testdata / "SOURCES.md").is_file():
        print(f"face_ocr bench: test data not found at {testdata}; skipping (pass --testdata)")
        return 0
    rounds = args.rounds or (3 if args.quick else 10)
    warmup = 1 if args.quick else 2
    ort.set_default_logger_severity(3)

    os.environ["LUMEN_TESTDATA"] = str(testdata)  # the model folders below link from there
    from tests.support.model_dirs import build_ppocr_dir, build_yunet_mobilefacenet_dir

    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"face_ocr bench: {rounds} rounds, {warmup} warm-up, threads={args.threads or 'default'}")
        face_dir = build_yunet_mobilefacenet_dir(Path(tmp) / "yunet-mobilefacenet")
        ocr_dir = build_ppocr_dir(Path(tmp) / "PP-OCRv4-test")
        service = ServiceRunners(
            face_dir if args.only in (None, "face") else None,
            ocr_dir if args.only in (None, "ocr") else None,
            args.threads,
        )
        try:
            if args.only in (None, "face"):
                samples = load_samples(testdata, FACE_PHOTOS)
                sides = {
                    "ours": service.runner("face_recognition"),
                    "pipeline": pipeline_face(face_dir, args.threads),
                    "bare": bare_face(testdata, args.threads),
                }
                ratios["face"] = report(
                    f"face_recognition (YuNet dynamic + MobileFaceNet), {len(samples)} photos",
                    measure(samples, sides, rounds, warmup),
                )
            if args.only in (None, "ocr"):
                samples = load_samples(testdata, OCR_IMAGES)
                sides = {
                    "ours": service.runner("ocr"),
                    "ours-no-verify": service.runner("ocr", {"cls_verify": "false"}),
                    "pipeline": pipeline_ocr(ocr_dir, args.threads),
                    "bare": bare_ocr(testdata, args.threads),
                }
                ratios["ocr"] = report(
                    f"ocr (PP-OCRv4 det + cls + rec), {len(samples)} images",
                    measure(samples, sides, rounds, warmup),
                )
        finally:
            service.close()
    print("\nsummary (ours = the service API): " + ", ".join(f"{k} ratio {v:.2f}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
