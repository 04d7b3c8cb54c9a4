"""What the gRPC hub adds on top of the service host, measured side by side in one run.

1. Latency of ``semantic_text_embed``: p50/p95 through a real grpc.aio server on 127.0.0.1
   (one Infer stream per request, like the Go SDK) vs a direct in-process ``host.infer`` call.
   Target: gRPC adds <= 1 ms at p50.
2. Throughput of ``semantic_image_embed`` with 16 concurrent streams vs 16 concurrent in-process
   calls on the same host. Target: ratio >= 0.9.

The host is pluggable: ``--host fake`` (default) is tests.support.fake_host.FakeHost with a small
fixed simulated compute time per request in 2 executor threads (--text-ms, --image-ms; like
onnxruntime calls that release the GIL); ``--host module:factory`` calls
``factory()`` for any ServiceHostProtocol (e.g. the real CLIP host once it lands). Client and
server share one process and event loop, so the gRPC figures include the client's own cost.

    python bench/grpc_overhead.py [--quick] [--host fake|module:factory] [--delay-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from PIL import Image  # noqa: E402

from app.core.grpc.host_view import HostView  # noqa: E402
from app.core.grpc.inference import InferenceServicer, install_inference  # noqa: E402
from app.core.grpc.server import GrpcListener  # noqa: E402
from proto.gen.home_native.v1 import ml_service_pb2 as pb  # noqa: E402
from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc  # noqa: E402
from services.api import InferenceRequest  # noqa: E402


def make_host(spec: str, text_ms: float, image_ms: float, workers: int):
    if spec == "fake":
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
            f"FakeHost (clip, dim 512) with a fixed simulated compute time in {workers} executor threads: "
            f"{text_ms:g} ms per text, {image_ms:g} ms per image (no model)"
        )
    module, _, factory = spec.partition(":")
    return getattr(importlib.import_module(module), factory)(), f"{spec}()"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def grpc_infer(stub, task: str, payload: bytes, mime: str) -> None:
    call = stub.Infer(timeout=60)
    await call.write(pb.InferRequest(task=task, payload=payload, payload_mime=mime, meta={"service": "clip"}))
    await call.done_writing()
    while True:
        response = await call.read()
        if response is grpc.aio.EOF or response.is_final:
            return


async def latency(host, stub, n: int) -> tuple[list[float], list[float]]:
    text = b"a photo of a red fox in the snow"
    direct: list[float] = []
    through: list[float] = []
    for i in range(n + 10):  # interleaved so both see the same machine load; the first 10 warm up
        t = time.perf_counter()
        await host.infer(InferenceRequest("semantic_text_embed", text, "text/plain", {"service": "clip"}))
        d = time.perf_counter() - t
        t = time.perf_counter()
        await grpc_infer(stub, "semantic_text_embed", text, "text/plain")
        g = time.perf_counter() - t
        if i >= 10:
            direct.append(d * 1000)
            through.append(g * 1000)
    return direct, through


async def throughput(host, stub, total: int, concurrency: int, image: bytes) -> tuple[float, float]:
    async def run(call) -> float:
        queue = list(range(total))

        async def worker() -> None:
            while queue:
                queue.pop()
                await call()

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - t)

    request = InferenceRequest("semantic_image_embed", image, "image/webp", {"service": "clip"})
    direct = await run(lambda: host.infer(request))
    through = await run(lambda: grpc_infer(stub, "semantic_image_embed", image, "image/webp"))
    return direct, through


def test_image() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (512, 384), (120, 80, 40)).save(out, "WEBP", quality=90)
    return out.getvalue()


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a few seconds)")
    parser.add_argument("--host", default="fake", help="fake, or module:factory returning a service host")
    parser.add_argument("--text-ms", type=float, default=2.0, help="FakeHost's simulated compute per text")
    parser.add_argument("--image-ms", type=float, default=25.0, help="FakeHost's simulated compute per image")
    parser.add_argument("--workers", type=int, default=2, help="FakeHost's concurrent compute slots")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    n = 200 if args.quick else 2000
    total = 160 if args.quick else 1600

    host, description = make_host(args.host, args.text_ms, args.image_ms, args.workers)
    await host.start()
    listener = GrpcListener("127.0.0.1", 0, installers=[install_inference(InferenceServicer(HostView(host)))])
    port = await listener.start()
    image = test_image()
    print(f"host: {description}")
    print(f"machine: shared with other jobs; figures are indicative. image payload {len(image)} bytes")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.InferenceStub(channel)
            direct, through = await latency(host, stub, n)
            d50, d95 = percentile(direct, 0.5), percentile(direct, 0.95)
            g50, g95 = percentile(through, 0.5), percentile(through, 0.95)
            added = g50 - d50
            print(f"\nsemantic_text_embed latency over {n} sequential requests (ms)")
            for label, p50, p95, values in (
                ("in-process host.infer", d50, d95, direct),
                ("through gRPC         ", g50, g95, through),
            ):
                print(f"  {label} : p50 {p50:7.3f}  p95 {p95:7.3f}  mean {statistics.mean(values):7.3f}")
            verdict = "OK" if added <= 1.0 else "OVER TARGET"
            print(f"  gRPC adds {added:.3f} ms at p50 (target <= 1 ms): {verdict}")

            d_rps, g_rps = await throughput(host, stub, total, args.concurrency, image)
            ratio = g_rps / d_rps
            print(
                f"\nsemantic_image_embed throughput, {args.concurrency} concurrent streams, {total} requests"
            )
            print(f"  in-process : {d_rps:8.1f} req/s")
            print(f"  gRPC       : {g_rps:8.1f} req/s")
            print(f"  ratio {ratio:.3f} (target >= 0.9): {'OK' if ratio >= 0.9 else 'UNDER TARGET'}")
    finally:
        await listener.stop(0)
        await host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
