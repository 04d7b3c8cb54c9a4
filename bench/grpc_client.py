"""A stand-alone gRPC client for bench/grpc_overhead.py when Go is not installed.

Run in its own process (like a photo server would be), it measures against ``--target`` what the
Go wireprobe's bench mode measures and prints the same ``WIREPROBE-BENCH {json}`` line:
sequential ``semantic_text_embed`` latency, then ``semantic_image_embed`` throughput with
``--concurrency`` streams. One Infer stream per request on one channel, keepalive as the SDK.
It needs only grpcio and the generated stubs (``proto.gen``).

    python bench/grpc_client.py --target 127.0.0.1:50051 --n 200 --image photo.webp
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from proto.gen.home_native.v1 import ml_service_pb2 as pb
from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc

CHUNK_THRESHOLD = 1 << 20
CHUNK_BYTES = 256 << 10
OPTIONS = [("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 3_000)]


def messages(task: str, payload: bytes, mime: str) -> list[pb.InferRequest]:
    meta = {"service": "clip"}
    if len(payload) <= CHUNK_THRESHOLD:
        return [pb.InferRequest(task=task, payload=payload, payload_mime=mime, meta=meta)]
    parts = [payload[i : i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)]
    return [
        pb.InferRequest(
            task=task,
            payload=p,
            payload_mime=mime,
            meta=meta,
            seq=i,
            total=len(parts),
            offset=i * CHUNK_BYTES,
        )
        for i, p in enumerate(parts)
    ]


async def call(stub: pb_grpc.InferenceStub, requests: list[pb.InferRequest]) -> None:
    stream = stub.Infer(timeout=60)
    for request in requests:
        await stream.write(request)
    await stream.done_writing()
    while True:
        response = await stream.read()
        if response is grpc.aio.EOF or response.is_final:
            return


def summarize(samples: list[float], fails: int) -> dict[str, float]:
    if not samples:
        return {"n": 0, "failures": fails}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]

    return {
        "n": len(ordered),
        "p50_ms": at(0.5),
        "p95_ms": at(0.95),
        "mean_ms": sum(ordered) / len(ordered),
        "min_ms": ordered[0],
        "failures": fails,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--text", default="a photo of a cat on the beach")
    parser.add_argument("--image", default="")
    parser.add_argument("--image-mime", default="image/webp")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--total", type=int, default=160)
    args = parser.parse_args()
    out: dict[str, object] = {}
    async with grpc.aio.insecure_channel(args.target, options=OPTIONS) as channel:
        stub = pb_grpc.InferenceStub(channel)
        text = messages("semantic_text_embed", args.text.encode(), "text/plain")
        samples: list[float] = []
        fails = 0
        for i in range(args.warmup + args.n):
            started = time.perf_counter()
            try:
                await call(stub, text)
            except grpc.aio.AioRpcError as exc:
                fails += 1
                out.setdefault("first_error", exc.details())
                continue
            if i >= args.warmup:
                samples.append((time.perf_counter() - started) * 1000)
        out["text"] = summarize(samples, fails)
        if args.image and args.total > 0:
            image = messages("semantic_image_embed", Path(args.image).read_bytes(), args.image_mime)
            remaining = [args.total]
            failures = [0]

            async def worker() -> None:
                while remaining[0] > 0:
                    remaining[0] -= 1
                    try:
                        await call(stub, image)
                    except grpc.aio.AioRpcError as exc:
                        failures[0] += 1
                        out.setdefault("first_error", exc.details())

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            seconds = time.perf_counter() - started
            out |= {
                "images": args.total,
                "image_failures": failures[0],
                "image_seconds": seconds,
                "image_rps": (args.total - failures[0]) / seconds,
            }
    print("WIREPROBE-BENCH " + json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
