"""What the gRPC hub adds on top of the service host, as a photo server in another process sees it.

The node side (this process): a real grpc.aio server on 127.0.0.1 with the Inference servicer
over a service host. The client side: ANOTHER process — the Go wireprobe in bench mode (grpc-go,
behaving as the Lumen Go SDK: one Infer stream per request on one shared connection, keepalive
10 s), or bench/grpc_client.py (Python) where Go is absent (``--client python``). Measured, with
in-process baselines taken before and after the client run (their mean is the baseline):

1. ``semantic_text_embed`` latency over sequential requests, p50/p95: gRPC (client process) vs
   a direct in-process ``host.infer``. Target: gRPC adds <= 1 ms at p50. Printed beside it, to
   read the figure: the floor (the same client against a bare grpc.aio servicer that answers
   with a precomputed result: what any Python gRPC node pays on this machine), the lean
   servicer (the same, but it encodes the text with the host's loaded model in one executor
   hop: the least a Python node doing this work can pay; real host only) — the hub's own code
   costs its p50 minus the lean one — and in-process calls paced like requests from a socket
   (the loop idle for the floor's round trip between calls: on a VM, threads woken from idle
   run a request slower than a hot back-to-back loop).
2. ``semantic_image_embed`` throughput with 16 concurrent streams vs 16 concurrent in-process
   ``host.infer`` calls (the host batches them). Target: ratio >= 0.9.

Hosts (``--host``):
  real (default)  the real ServiceHost with a CLIP model written by the test generator: the tiny
                  text graph (512-d) and a CLIP ViT-B/32-shaped vision encoder (224 px, 12
                  blocks; 2 with --quick; random weights, real compute) — what bench/infer.py uses;
  fake            tests.support.fake_host.FakeHost with a fixed simulated compute time in 2
                  executor threads (--text-ms, --image-ms);
  module:factory  any ServiceHostProtocol returned by ``factory()``.

    python bench/grpc_overhead.py [--quick] [--host real|fake|module:factory] [--client go|python]
                                  [--profile out.prof]

``--profile`` writes a cProfile of the node process during the client run (server path only).
The machine is shared with other jobs: run it more than once and read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from app.core.grpc.host_view import HostView  # noqa: E402
from app.core.grpc.inference import InferenceServicer, install_inference  # noqa: E402
from app.core.grpc.results import result_json, result_messages  # noqa: E402
from app.core.grpc.server import GrpcListener  # noqa: E402
from proto.gen.home_native.v1 import ml_service_pb2 as pb  # noqa: E402
from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc  # noqa: E402
from services.api import HostSettings, InferenceRequest, InferenceResult  # noqa: E402

TEXT = "a photo of a cat on the beach"


# ------------------------------------------------------------------------------------ hosts


def real_host(workdir: Path, quick: bool) -> tuple[Any, str]:
    from services.host import ServiceHost
    from tests.support.tiny_models import vit_vision_graph, write_clip_model

    layers = 2 if quick else 12
    model = write_clip_model(
        workdir / "models",
        name="vit-b32-bench",
        dim=512,
        image_size=224,
        context_length=77,
        vision_model=vit_vision_graph(layers=layers),
    )
    host = ServiceHost([model.service_spec()], HostSettings(model_idle_ttl_s=0))
    return host, (
        f"real ServiceHost, clip: tiny text graph (512-d) + ViT-B/32-shaped vision encoder, {layers} "
        "blocks, random weights (onnxruntime)"
    )


def fake_host(text_ms: float, image_ms: float, workers: int) -> tuple[Any, str]:
    from tests.support.fake_host import FakeHost

    class ComputeFakeHost(FakeHost):
        """FakeHost whose requests occupy one of ``workers`` executor threads for a fixed time,
        like onnxruntime calls (which release the GIL) on a host with max_concurrency 2."""

        def __init__(self) -> None:
            super().__init__(("clip",), dim=512)
            self.services["clip"].max_queue = 1024
            self.slots = asyncio.Semaphore(workers)

        async def run(self, request):  # type: ignore[override]
            seconds = (text_ms if request.task.startswith("semantic_text") else image_ms) / 1000
            async with self.slots:
                await asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)
            async for result in super().run(request):
                yield result

    return ComputeFakeHost(), (
        f"FakeHost (clip, dim 512), simulated compute in {workers} threads: {text_ms:g} ms per text, "
        f"{image_ms:g} ms per image (no model)"
    )


def make_host(args: argparse.Namespace, workdir: Path) -> tuple[Any, str]:
    if args.host == "real":
        return real_host(workdir, args.quick)
    if args.host == "fake":
        return fake_host(args.text_ms, args.image_ms, args.workers)
    module, _, factory = args.host.partition(":")
    return getattr(importlib.import_module(module), factory)(), f"{args.host}()"


# --------------------------------------------------------------------------------- payloads


def photo_webp(width: int = 640, height: int = 480) -> bytes:
    """A photo-like WebP (gradients plus noise), what Lumilio Photos sends."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 255, yy / height * 255, (xx + yy) % 255], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "WEBP", quality=90)
    return out.getvalue()


# ------------------------------------------------------------------------- in-process side


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


TEXT_REQUEST = InferenceRequest("semantic_text_embed", TEXT.encode(), "text/plain", {"service": "clip"})


async def inproc_latency(host: Any, n: int, idle_ms: float = 0.0) -> list[float]:
    """``n`` sequential ``host.infer`` calls; with ``idle_ms`` the loop idles that long between
    calls, as a node does while a request travels over the socket."""
    samples = []
    for _ in range(n):
        if idle_ms:
            await asyncio.sleep(idle_ms / 1000)
        started = time.perf_counter()
        await host.infer(TEXT_REQUEST)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


class PrecomputedServicer(pb_grpc.InferenceServicer):
    """The floor: reads the request stream as the hub does and answers with fixed messages."""

    def __init__(self, answer: list[pb.InferResponse], work: Callable[[], Any] | None = None) -> None:
        self.answer = answer
        self.work = work  # run in one executor hop per request (the lean servicer)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="lean") if work is not None else None

    async def Infer(self, request_iterator: Any, context: Any) -> None:
        while True:
            message = await context.read()
            if message is grpc.aio.EOF or message.total <= 1 or message.seq + 1 >= message.total:
                break
        if self.work is not None:
            await asyncio.get_running_loop().run_in_executor(self.pool, self.work)
        for response in self.answer:
            await context.write(response)


def precomputed_answer(result: InferenceResult) -> list[pb.InferResponse]:
    meta = {"service": "clip", "task": result.schema, "lat_ms": "0.000"}
    return result_messages(result_json(result), schema=result.schema, meta=meta, correlation_id="")


async def inproc_throughput(host: Any, image: bytes, total: int, concurrency: int) -> float:
    request = InferenceRequest("semantic_image_embed", image, "image/webp", {"service": "clip"})
    remaining = [total]

    async def worker() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            await host.infer(request)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


# ----------------------------------------------------------------------------- client side


def client_command(kind: str, workdir: Path) -> tuple[list[str], str]:
    if kind == "go" or (kind == "auto" and shutil.which("go")):
        from tests.interop.go_build import build_probe

        print("building the Go wireprobe ...", flush=True)
        probe = build_probe(workdir / "go")
        return [str(probe), "-mode", "bench"], "Go wireprobe (grpc-go, SDK-like), separate process"
    script = ROOT / "bench" / "grpc_client.py"
    return [sys.executable, str(script)], "Python grpc.aio client (bench/grpc_client.py), separate process"


async def run_client(
    command: list[str], port: int, image: Path, n: int, total: int, concurrency: int, go: bool
) -> dict[str, Any]:
    dash = "-" if go else "--"
    args = [
        f"{dash}target",
        f"127.0.0.1:{port}",
        f"{dash}n",
        str(n),
        f"{dash}warmup",
        "20",
        f"{dash}text",
        TEXT,
        f"{dash}image",
        str(image),
        f"{dash}concurrency",
        str(concurrency),
        f"{dash}total",
        str(total),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    lines = [x for x in out.decode().splitlines() if x.startswith("WIREPROBE-BENCH ")]
    if process.returncode != 0 or not lines:
        raise SystemExit(f"the client failed:\n{out.decode()}\n{err.decode()}")
    return json.loads(lines[-1].removeprefix("WIREPROBE-BENCH "))


def lean_work(host: Any) -> Callable[[], Any] | None:
    """The text encoding the hub runs per request, on the host's loaded model (real host)."""
    slots = getattr(host, "model_slots", None)
    model = slots("clip")["default"].instance if slots is not None else None
    return None if model is None else lambda: model.encode_texts([TEXT])


async def floor_latency(
    command: list[str],
    result: InferenceResult,
    image: Path,
    n: int,
    work: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """The client's text latency against :class:`PrecomputedServicer` (same server settings)."""
    servicer = PrecomputedServicer(precomputed_answer(result), work)

    def install(server: grpc.aio.Server) -> None:
        pb_grpc.add_InferenceServicer_to_server(servicer, server)

    listener = GrpcListener("127.0.0.1", 0, installers=[install])
    port = await listener.start()
    try:
        remote = await run_client(command, port, image, n, 0, 1, go=command[-1] == "bench")
    finally:
        await listener.stop(0)
    return remote["text"]


# ------------------------------------------------------------------------------------- main


async def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests, 2-block vision model")
    parser.add_argument("--host", default="real", help="real, fake, or module:factory")
    parser.add_argument("--client", default="auto", choices=("auto", "go", "python"))
    parser.add_argument("--text-ms", type=float, default=2.0, help="FakeHost: simulated compute per text")
    parser.add_argument("--image-ms", type=float, default=25.0, help="FakeHost: simulated compute per image")
    parser.add_argument("--workers", type=int, default=2, help="FakeHost: concurrent compute slots")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--n", type=int, default=0, help="text requests (default 300, 100 with --quick)")
    parser.add_argument("--total", type=int, default=0, help="image requests (default 160, 48 with --quick)")
    parser.add_argument("--profile", default="", help="write a cProfile of the node during the client run")
    args = parser.parse_args()
    n = args.n or (100 if args.quick else 300)
    total = args.total or (48 if args.quick else 160)

    workdir = Path(tempfile.mkdtemp(prefix="lumen-grpc-bench-"))
    try:
        return await run(args, workdir, n, total)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def run(args: argparse.Namespace, workdir: Path, n: int, total: int) -> int:
    host, description = make_host(args, workdir)
    command, client_description = client_command(args.client, workdir)
    image_bytes = photo_webp()
    image = workdir / "photo.webp"
    image.write_bytes(image_bytes)
    await host.start()
    listener = GrpcListener("127.0.0.1", 0, installers=[install_inference(InferenceServicer(HostView(host)))])
    port = await listener.start()
    print(f"host  : {description}")
    print(f"client: {client_description}")
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, shared with other jobs; "
        f"image payload {len(image_bytes)} bytes WebP 640x480"
    )
    try:
        await inproc_latency(host, 20)  # loads the models, warms up
        await inproc_throughput(host, image_bytes, args.concurrency, args.concurrency)
        before_lat = await inproc_latency(host, n)
        before_rps = await inproc_throughput(host, image_bytes, total, args.concurrency)
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        remote = await run_client(command, port, image, n, total, args.concurrency, go=command[-1] == "bench")
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        after_lat = await inproc_latency(host, n)
        after_rps = await inproc_throughput(host, image_bytes, total, args.concurrency)
        answer = await host.infer(TEXT_REQUEST)
        floor = await floor_latency(command, answer, image, n)
        work = lean_work(host)
        lean = await floor_latency(command, answer, image, n, work) if work is not None else None
        paced = await inproc_latency(host, n, idle_ms=floor["p50_ms"])
    finally:
        await listener.stop(0)
        await host.stop()

    direct = before_lat + after_lat
    d50, d95 = percentile(direct, 0.5), percentile(direct, 0.95)
    text = remote["text"]
    g50, g95 = text["p50_ms"], text["p95_ms"]
    added = g50 - d50
    print(f"\nsemantic_text_embed latency, {n} sequential requests per run (ms)")
    print(
        f"  in-process host.infer : p50 {d50:7.3f}  p95 {d95:7.3f}  mean {statistics.mean(direct):7.3f}"
        f"   (before {percentile(before_lat, 0.5):.3f}, after {percentile(after_lat, 0.5):.3f} at p50)"
    )
    print(f"  gRPC, client process  : p50 {g50:7.3f}  p95 {g95:7.3f}  mean {text['mean_ms']:7.3f}")
    print(f"  gRPC adds {added:.3f} ms at p50 (target <= 1 ms): {'OK' if added <= 1.0 else 'OVER TARGET'}")
    f50, p50 = floor["p50_ms"], percentile(paced, 0.5)
    print("  to read it:")
    print(f"    floor, bare grpc.aio servicer with a precomputed answer : p50 {f50:7.3f}")
    if lean is not None:
        l50 = lean["p50_ms"]
        print(f"    lean, the same encoding the text in one executor hop    : p50 {l50:7.3f}")
    print(f"    in-process paced, loop idle {f50:.2f} ms between calls      : p50 {p50:7.3f}")
    if lean is not None:
        print(
            f"    over the direct call the lean servicer adds {l50 - d50:.3f} ms, the hub {added:.3f} ms: "
            f"the hub's own code costs {g50 - l50:.3f} ms at p50"
        )
    baseline = (before_rps + after_rps) / 2
    rps = remote["image_rps"]
    ratio = rps / baseline
    print(f"\nsemantic_image_embed throughput, {args.concurrency} concurrent streams, {total} requests")
    print(f"  in-process batched : {baseline:8.2f} req/s  (before {before_rps:.2f}, after {after_rps:.2f})")
    print(f"  gRPC, client proc. : {rps:8.2f} req/s  ({remote['image_failures']} failures)")
    print(f"  ratio {ratio:.3f} (target >= 0.9): {'OK' if ratio >= 0.9 else 'UNDER TARGET'}")
    if remote.get("first_error"):
        print(f"  first client error: {remote['first_error']}")
    if args.profile:
        print(f"\nprofile of the node during the client run: {args.profile} (python -m pstats)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
