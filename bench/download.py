"""Download throughput and memory: our manager vs plain curl, same files, same server, same run.

A ~500 MB model repository (``--quick``: ~50 MB) is generated in a temporary folder and served by
the fake Hugging Face hub of the tests (LFS files redirect to a second "CDN" origin and are sent
with sendfile, so the server is not the bottleneck). Then:

* curl fetches every selected file (``-L`` through the redirects, ``--parallel`` with the same
  number of parallel transfers as our manager); it is timed alone, and followed by ``sync`` of its
  files (our manager fsyncs each verified file before it enters the cache, so "curl + sync" is
  the like-for-like baseline when the disk is slower than the network);
* ``lumen-hub``'s DownloadManager fetches the same files in a child process (listing, ranged GETs,
  SHA-256 while writing, fsync, commit into the cache) and reports its peak RSS.

Printed: MB/s of each, the ratio ours/curl (target >= 0.8) and our peak RSS (target < 150 MB).
Everything generated is deleted at the end. The machine may be shared: figures are noisy.

    .venv/bin/python bench/download.py [--quick] [--parallel N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_hubs import FakeHuggingFace  # noqa: E402

MODEL = "BenchCLIP"
REPO = f"Lumilio-Photos/{MODEL}"

CHILD = r"""
import asyncio, json, resource, sys, time
from app.core.config import build_config
from app.core.downloads import DownloadManager, requests_from_config
config = build_config(json.loads(sys.argv[1]))
async def main():
    manager = DownloadManager(config)
    started = time.perf_counter()
    results = await manager.download(requests_from_config(config))
    elapsed = time.perf_counter() - started
    await manager.close()
    return results[0], elapsed
result, elapsed = asyncio.run(main())
print(json.dumps({"ok": result.ok, "error": result.error, "bytes": result.bytes_fetched, "elapsed": elapsed,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def generate(folder: Path, total_mb: int) -> dict[str, Path]:
    """Random weight files (two components) plus the small files of a real repository."""
    sizes = {"onnx/vision.fp32.onnx": 0.55, "onnx/text.fp32.onnx": 0.35, "ImageNet_1k.npz": 0.10}
    files: dict[str, Path] = {}
    block = os.urandom(4 * 1024 * 1024)
    for rel, share in sizes.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        remaining = int(total_mb * 1_000_000 * share)
        with path.open("wb") as out:
            while remaining > 0:
                chunk = block[:remaining] if remaining < len(block) else block
                out.write(chunk)
                remaining -= len(chunk)
                block = block[1:] + block[:1]  # not the same bytes in every block
        files[rel] = path
    info = {
        "name": MODEL,
        "version": "1.0.0",
        "description": "benchmark model",
        "model_type": "clip",
        "runtimes": {"onnx": {"available": True, "files": ["onnx/vision.fp32.onnx", "onnx/text.fp32.onnx"]}},
        "datasets": {"ImageNet_1k": "ImageNet_1k.npz"},
    }
    for rel, content in {
        "model_info.json": json.dumps(info).encode(),
        "tokenizer.json": b'{"model": {"vocab": {}}}',
        "open_clip_config.json": b'{"model_cfg": {}}',
    }.items():
        (folder / rel).write_bytes(content)
        files[rel] = folder / rel
    return files


def run_curl(hub: FakeHuggingFace, files: list[str], out: Path, parallel: int) -> tuple[float, float]:
    """Seconds for curl alone, and for curl followed by ``sync`` of its files (durable on disk, as
    our manager's files are before they enter the cache)."""
    commit = hub.repos[REPO].commit
    args = [
        "curl",
        "--silent",
        "--show-error",
        "--fail",
        "--location",
        "--parallel",
        "--parallel-max",
        str(parallel),
    ]
    for rel in files:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        args += ["-o", str(target), f"{hub.url}/{REPO}/resolve/{commit}/{rel}"]
    started = time.perf_counter()
    subprocess.run(args, check=True, stderr=subprocess.DEVNULL)
    fetched = time.perf_counter() - started
    subprocess.run(["sync", *(str(out / rel) for rel in files)], check=True)
    return fetched, time.perf_counter() - started


def run_ours(hub: FakeHuggingFace, cache: Path, parallel: int) -> dict:
    config = {
        "metadata": {"cache_dir": str(cache)},
        "downloads": {
            "endpoints": {"huggingface": hub.url, "modelscope": "http://127.0.0.1:9"},
            "max_parallel_files": parallel,
            "keep_free_mb": 0,
        },
        "services": {
            "clip": {"models": {"default": {"model": MODEL, "runtime": "onnx", "dataset": "ImageNet_1k"}}}
        },
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(config)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"our download failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if not report["ok"]:
        raise SystemExit(f"our download failed: {report['error']}")
    report["wall"] = wall
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~50 MB repository instead of ~500 MB")
    parser.add_argument("--parallel", type=int, default=4, help="parallel file transfers (both sides)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="alternate curl and ours this many times, keep the best of each (default 3, quick 1)",
    )
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed; it is the baseline of this benchmark")
    total_mb = 50 if args.quick else 500
    rounds = args.rounds or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="lumen-bench-download-") as tmp:
        tmp_path = Path(tmp)
        sources = generate(tmp_path / "repo", total_mb)
        files = sorted(sources)
        size = sum(p.stat().st_size for p in sources.values())
        curl_times: list[tuple[float, float]] = []
        runs: list[dict] = []
        with FakeHuggingFace({REPO: sources}) as hub:
            for _ in range(rounds):
                shutil.rmtree(tmp_path / "curl", ignore_errors=True)
                shutil.rmtree(tmp_path / "cache", ignore_errors=True)
                curl_times.append(run_curl(hub, files, tmp_path / "curl", args.parallel))
                runs.append(run_ours(hub, tmp_path / "cache", args.parallel))
                got = tmp_path / "cache" / "models" / MODEL
                for rel in files:  # the same bytes on both sides
                    if (got / rel).stat().st_size != (tmp_path / "curl" / rel).stat().st_size:
                        raise SystemExit(f"size mismatch for {rel}")
        curl_s = min(t for t, _ in curl_times)
        durable_s = min(t for _, t in curl_times)
        ours = min(runs, key=lambda r: r["elapsed"])
        ours["peak_rss_kb"] = max(r["peak_rss_kb"] for r in runs)
    mb = size / 1e6
    curl_rate = mb / curl_s
    durable_rate = mb / durable_s
    our_rate = mb / ours["elapsed"]
    print(
        f"repository: {len(files)} files, {mb:.1f} MB, {args.parallel} parallel transfers, loopback HTTP, "
        f"best of {rounds} round{'s' if rounds > 1 else ''}"
    )
    print(f"curl:            {curl_s:6.2f} s  {curl_rate:8.1f} MB/s  (files left in the page cache)")
    print(f"curl + sync:     {durable_s:6.2f} s  {durable_rate:8.1f} MB/s  (files on disk)")
    print(
        f"DownloadManager: {ours['elapsed']:6.2f} s  {our_rate:8.1f} MB/s  (incl. SHA-256, fsync, commit; "
        f"process wall {ours['wall']:.2f} s with interpreter start)"
    )
    print(f"ratio ours/curl: {our_rate / curl_rate:.2f}  (target >= 0.8)")
    print(f"ratio ours/(curl + sync): {our_rate / durable_rate:.2f}  (both durable)")
    print(f"peak RSS of our process: {ours['peak_rss_kb'] / 1024:.1f} MB  (target < 150 MB)")
    print("note: the machine may be shared with other jobs; figures are indicative")


if __name__ == "__main__":
    main()
