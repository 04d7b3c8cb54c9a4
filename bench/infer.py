"""Inference throughput and memory of the service host vs a bare onnxruntime loop.

A CLIP ViT-B/32-shaped vision encoder (224 px, patch 32, width 768, 12 blocks, MLP 3072,
projection 512; random weights, real compute) is written into a model folder with the test
generator, then, in one run, side by side on the same JPEG inputs:

* bare     : one ``onnxruntime.InferenceSession`` with default options, a plain loop of
             decode + preprocess + run, one image at a time (measured before and after the
             service modes of each round; their mean is that round's baseline);
* service  : ``ServiceHost.infer(semantic_image_embed)`` one request at a time (target ≥ 0.95
             of bare), and with 8 concurrent request streams, batched (target ≥ 1.2 of bare);
             with the node's default settings, and again with ``node.cpu_spin_wait: true``
             (the bare session's onnxruntime default: threads keep spinning after a run; by
             default the node stops them when a run ends on machines with 4 CPUs or fewer,
             so they leave the cores to the gRPC threads and decoding between requests);
* memory   : RSS before the model is loaded, after loading it, and after the idle TTL unloaded
             it (target: back within 15 % of before).

    python bench/infer.py            # full: 12 blocks, 8 paired rounds of 16 images
    python bench/infer.py --quick    # 2 blocks, 2 rounds (a smoke run)

The figures depend on the machine and on whatever else runs on it; the ratios are what matter.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from services.api import HostSettings, InferenceRequest, ServiceState  # noqa: E402
from services.clip.preprocess import ImagePreprocess  # noqa: E402
from services.host import ServiceHost  # noqa: E402
from services.memory import release_free_memory  # noqa: E402
from services.runtimes.onnx import thread_plan  # noqa: E402
from tests.support.tiny_models import vit_vision_graph, write_clip_model  # noqa: E402

CONCURRENCY = 8
PER_ROUND = 16  # images per mode per round: 2 per stream, so 8 streams stay busy, not a burst of 8


def rss_mb() -> float:
    gc.collect()
    return psutil.Process(os.getpid()).memory_info().rss / 1e6


def make_images(count: int, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    """Photo-like JPEGs: smooth gradients with some noise (random noise alone decodes slowly)."""
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(count):
        base = np.stack([xx / w * 255, yy / h * 255, ((xx + yy + 40 * i) % 255)], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


class BareLoop:
    """The plainest possible onnxruntime loop: decode, preprocess, run, one image at a time."""

    def __init__(self, model_path: Path, pre: ImagePreprocess) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name
        self.pre = pre

    def one(self, raw: bytes) -> np.ndarray:
        image = Image.open(io.BytesIO(raw)).convert("RGB")
        out = self.session.run(None, {self.name: self.pre.to_tensor(image)[None]})[0]
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def seconds(self, images: list[bytes]) -> float:
        started = time.perf_counter()
        for raw in images:
            self.one(raw)
        return time.perf_counter() - started


async def service_single(host: ServiceHost, images: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in images:
        await host.infer(InferenceRequest("semantic_image_embed", raw, "image/jpeg"))
    return time.perf_counter() - started


async def service_concurrent(host: ServiceHost, images: list[bytes], streams: int) -> float:
    queue = list(images)

    async def worker() -> None:
        while queue:
            raw = queue.pop()
            await host.infer(InferenceRequest("semantic_image_embed", raw, "image/jpeg"))

    started = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(streams)])
    return time.perf_counter() - started


def photo_preprocessing(host: ServiceHost, pre: ImagePreprocess) -> tuple[float, float]:
    """ms to decode + preprocess a 12 MP phone-sized JPEG: full decode (the bare loop) vs the
    service's ``prepare_image`` (libjpeg's reduced-scale decode)."""
    photos = make_images(2, size=(4032, 3024))
    prepare = host.model_slots("clip")["default"].instance.prepare_image

    def bare(raw: bytes) -> None:
        pre.to_tensor(Image.open(io.BytesIO(raw)).convert("RGB"))

    def best_ms(fn: Callable[[bytes], object]) -> float:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for raw in photos:
                fn(raw)
            runs.append((time.perf_counter() - started) / len(photos) * 1000)
        return min(runs)

    return best_ms(bare), best_ms(lambda raw: prepare(raw, "image/jpeg"))


async def settle() -> None:
    """A pause between measured phases: spin-waiting onnxruntime threads (the bare session's
    default) keep a core busy for tens of milliseconds after their last run, which would be
    charged to whichever phase runs next."""
    await asyncio.sleep(0.3)


async def wait_state(host: ServiceHost, state: ServiceState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while host.statuses()[0].state is not state:
        if time.monotonic() > deadline:
            raise TimeoutError(f"service did not reach {state}")
        await asyncio.sleep(0.05)


async def unload_finished() -> None:
    """Wait for the host's ``unload:…`` task (the close, then handing memory back)."""
    while unloads := [t for t in asyncio.all_tasks() if ":unload:" in t.get_name()]:
        await asyncio.wait(unloads)


async def main(quick: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lumen-bench-"))
    try:
        await run(workdir, quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def run(workdir: Path, quick: bool) -> None:
    layers = 2 if quick else 12
    count = 16 if quick else 48
    rounds = 2 if quick else 8
    print(f"building a ViT-B/32-shaped vision model ({layers} blocks) in {workdir} ...", flush=True)
    model = write_clip_model(
        workdir,
        name="vit-b32-random",
        dim=512,
        image_size=224,
        context_length=77,
        vision_model=vit_vision_graph(layers=layers),
    )
    vision_path = model.path / "onnx" / "vision.fp32.onnx"
    print(f"model file: {vision_path.stat().st_size / 1e6:.0f} MB; {count} JPEG inputs 640x480")
    images = make_images(count)
    pre = ImagePreprocess(height=224, width=224)
    import onnxruntime  # noqa: F401 - imported before measuring, as the node has it imported

    release_free_memory()
    # ---------------------------------------------------------------- memory
    ttl = 1.0
    host = ServiceHost([model.service_spec()], HostSettings(model_idle_ttl_s=ttl))
    rss_before = rss_mb()
    rss_loaded: list[float] = []
    rss_unloaded: list[float] = []
    for _ in range(2):  # the second cycle shows whether anything accumulates
        await host.infer(InferenceRequest("semantic_image_embed", images[0], "image/jpeg"))
        rss_loaded.append(rss_mb())
        await wait_state(host, ServiceState.NOT_LOADED, timeout=ttl + 10)
        await unload_finished()  # the close runs in the executor right after the state change
        rss_unloaded.append(rss_mb())
    await host.stop()

    # ---------------------------------------------------------------- throughput
    # Paired rounds: in each, the bare loop runs before and after the service modes (in an order
    # that rotates), and each mode's ratio is taken against the mean of its round's two bare
    # runs. The figure is the median over the rounds: this VM's speed drifts by up to a quarter
    # for seconds at a time (the bare loop's own spread is printed), which a ratio of totals
    # charges to whichever mode ran during a slow spell.
    bare = BareLoop(vision_path, pre)
    bare.one(images[0])  # warm up
    hosts = {
        "default": ServiceHost([model.service_spec()], HostSettings(model_idle_ttl_s=600)),
        "spin-wait": ServiceHost([model.service_spec()], HostSettings(model_idle_ttl_s=600, spin_wait=True)),
    }
    for host in hosts.values():  # load + warm up
        await host.infer(InferenceRequest("semantic_image_embed", images[0], "image/jpeg"))
    modes: dict[str, Callable[[list[bytes]], Awaitable[float]]] = {}
    for name, host in hosts.items():
        modes[f"single {name}"] = functools.partial(service_single, host)
        modes[f"concurrent {name}"] = functools.partial(service_concurrent, host, streams=CONCURRENCY)
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    totals: dict[str, float] = dict.fromkeys(modes, 0.0)
    bare_rates: list[float] = []
    for i in range(rounds):
        chunk = (images * 2)[(i * PER_ROUND) % count :][:PER_ROUND]
        before = bare.seconds(chunk)
        order = list(modes)[i % len(modes) :] + list(modes)[: i % len(modes)]
        took = {}
        for mode in order:
            await settle()
            took[mode] = await modes[mode](chunk)
        await settle()
        after = bare.seconds(chunk)
        bare_rates += [PER_ROUND / before, PER_ROUND / after]
        for mode, seconds in took.items():
            ratios[mode].append((before + after) / 2 / seconds)
            totals[mode] += seconds
    bare_total = sum(PER_ROUND / r for r in bare_rates) / 2  # seconds for one pass of each round
    rate = {mode: rounds * PER_ROUND / seconds for mode, seconds in totals.items()}
    batches = list(hosts["default"].model_slots("clip")["default"].batchers["vision"].batch_sizes)
    photo_bare, photo_service = photo_preprocessing(hosts["default"], pre)
    runtime = hosts["default"].statuses()[0].runtime
    for host in hosts.values():
        await host.stop()

    bare_rate = rounds * PER_ROUND / bare_total
    sizes = sorted(set(batches))
    rows = []
    for name in hosts:
        for kind, label, target in (
            ("single", "1 stream         ", 0.95),
            ("concurrent", f"{CONCURRENCY} streams batched", 1.2),
        ):
            mode = f"{kind} {name}"
            spread = ratios[mode]
            median = statistics.median(spread)
            rows.append(
                f"service ({name:9}), {label}: {rate[mode]:6.2f} img/s  ratio {median:.3f} "
                f"(rounds {min(spread):.2f}-{max(spread):.2f}; of totals {rate[mode] / bare_rate:.3f})  "
                f"target >= {target}"
            )
    growth = 100 * (rss_unloaded[0] - rss_before) / rss_before
    lines = [
        "",
        f"machine: {psutil.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared with other work)",
        f"service runtime {runtime}; batch_max_size 8, batch_max_wait_ms 5, max_concurrency 2; "
        f"onnxruntime threads by default: {thread_plan().describe}",
        f"{rounds} paired rounds of {PER_ROUND} images per mode; ratio = median over rounds of mode / "
        "the round's bare runs",
        f"bare onnxruntime loop (default options, spin-waiting): {bare_rate:6.2f} img/s (rounds "
        f"{min(bare_rates):.2f}-{max(bare_rates):.2f}: the machine's own drift)",
        *rows,
        f"batch sizes seen by the default service: {', '.join(f'{n} x{batches.count(n)}' for n in sizes)}",
        f"decode + preprocess a 4032x3024 JPEG: bare {photo_bare:.0f} ms, service {photo_service:.0f} ms "
        f"(ratio {photo_bare / photo_service:.2f}; libjpeg decodes it at 1/4 scale for a 224 px model)",
        f"RSS before load {rss_before:.0f} MB, after load {rss_loaded[0]:.0f} MB, after TTL unload "
        f"{rss_unloaded[0]:.0f} MB: {growth:+.1f}% of before (target within 15%)",
        f"second load/unload cycle: after load {rss_loaded[1]:.0f} MB, after unload {rss_unloaded[1]:.0f} MB",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 transformer blocks, 16 images")
    asyncio.run(main(parser.parse_args().quick))
