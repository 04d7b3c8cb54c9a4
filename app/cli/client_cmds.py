"""``lumen-hub infer`` and ``lumen-hub status``: call a node like an app would.

``infer`` sends one request through ``home_native.v1.Inference`` the way the Lumen Go SDK does
(capabilities first to fill ``meta.service``; payloads over 1 MiB as 256 KiB chunks with an empty
correlation id) and prints the result readably, or only the raw result JSON with ``--json``.
``status`` prints ``lumen.node.v1.GetNodeInfo``. The default target is 127.0.0.1 on the
configured main port.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.cli import EXIT_FAILURE, EXIT_OK, UsageError

MiB = 1024 * 1024
DEFAULT_PORT = 50051


def register(sub: Any) -> None:
    p = sub.add_parser(
        "infer",
        help="run one task on a node and print the result",
        description="Run one inference task on a node (this one by default) and print the result.",
    )
    p.add_argument(
        "task", metavar="TASK", help="e.g. semantic_text_embed, semantic_image_embed, ocr, face_recognition"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="text payload (text/plain)")
    source.add_argument("--file", type=Path, help="file payload, e.g. an image (its type is detected)")
    p.add_argument(
        "--mime", help="payload MIME type (default: detected from the file, text/plain for --text)"
    )
    p.add_argument("--meta", action="append", default=[], metavar="K=V", help="request meta, e.g. top_k=5")
    _target_args(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the result (default 60)")
    p.add_argument("--json", action="store_true", help="print only the raw result JSON (for scripts)")
    p.set_defaults(func=cmd_infer)

    s = sub.add_parser("status", help="show a node's info and service states", description="Show node info.")
    _target_args(s)
    s.add_argument("--json", action="store_true", help="print the node info as JSON")
    s.set_defaults(func=cmd_status)


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target", metavar="HOST:PORT", help="the node to call (default 127.0.0.1:<configured port>)"
    )
    p.add_argument("--config", type=Path, help="config file whose port is the default target")


def default_target(config: Path | None) -> str:
    from app.core import paths
    from app.core.config import ConfigError, load_config

    path = paths.resolve_config_path(config)
    port = DEFAULT_PORT
    if path.exists():
        try:
            port = load_config(path).main_port or DEFAULT_PORT
        except ConfigError:
            print(
                f"lumen-hub: {path} is not valid (see `lumen-hub validate`); trying port {port}",
                file=sys.stderr,
            )
    return f"127.0.0.1:{port}"


def parse_meta(items: Sequence[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--meta takes KEY=VALUE (got {item!r}), e.g. --meta top_k=5")
        meta[key.strip()] = value
    return meta


def detect_mime(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "image/avif"
    return "application/octet-stream"


def _fail(command: str, exc: Any, target: str = "") -> int:
    code = exc.code().name if hasattr(exc, "code") else "ERROR"
    details = exc.details() if hasattr(exc, "details") else str(exc)
    print(f"lumen-hub {command}: {code}: {details}", file=sys.stderr)
    if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED") and target:
        print(
            f"Is a node running at {target}? Start one with `lumen-hub start`, or pass --target HOST:PORT.",
            file=sys.stderr,
        )
    return EXIT_FAILURE


def cmd_infer(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import empty_pb2

    from app.core.grpc.chunks import request_messages
    from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc

    meta = parse_meta(args.meta)
    if args.text is not None:
        payload, mime = args.text.encode("utf-8"), args.mime or "text/plain"
    else:
        try:
            payload = args.file.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read --file {args.file}: {exc.strerror or exc}") from None
        mime = args.mime or detect_mime(payload)
    target = args.target or default_target(args.config)
    options = [("grpc.max_receive_message_length", 64 * MiB)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = pb_grpc.InferenceStub(channel)
        try:
            if "service" not in meta:
                caps = list(stub.StreamCapabilities(empty_pb2.Empty(), timeout=min(args.timeout, 10)))
                owners = [c.service_name for c in caps if any(t.name == args.task for t in c.tasks)]
                if len(owners) == 1:
                    meta["service"] = owners[0]
            responses = []
            for response in stub.Infer(
                request_messages(args.task, payload, mime, meta), timeout=args.timeout
            ):
                responses.append(response)
                if response.is_final:
                    break
        except grpc.RpcError as exc:
            return _fail("infer", exc, target)
    finals = [r for r in responses if r.is_final]
    if not finals:
        print(f"lumen-hub infer: the node at {target} sent no final result", file=sys.stderr)
        return EXIT_FAILURE
    chunked = [r for r in responses if r.total > 1]
    body = b"".join(r.result for r in sorted(chunked, key=lambda r: r.seq)) if chunked else finals[-1].result
    final = finals[-1]
    if args.json:
        sys.stdout.write(body.decode("utf-8") + "\n")
        return EXIT_OK
    try:
        result = json.loads(body)
    except ValueError:
        print(f"{final.result_mime}: {len(body)} bytes (not JSON)")
        return EXIT_OK
    print(format_result(final.result_schema, result, dict(final.meta)))
    return EXIT_OK


def format_result(schema: str, result: dict[str, Any], meta: dict[str, str]) -> str:
    lines = []
    where = ", ".join(f"{k} {meta[k]}" for k in ("service", "model_id", "runtime") if meta.get(k))
    if where or meta.get("lat_ms"):
        lines.append(
            f"{schema} from {where or 'the node'}"
            + (f" in {meta['lat_ms']} ms" if meta.get("lat_ms") else "")
        )
    if schema == "embedding_v1":
        vector = result.get("vector", [])
        head = ", ".join(f"{v:.4f}" for v in vector[:8])
        lines.append(f"embedding: dim {result.get('dim', len(vector))}, model {result.get('model_id', '?')}")
        lines.append(f"first values: [{head}{', ...' if len(vector) > 8 else ''}]")
        if "aesthetic_score" in result:
            lines.append(f"aesthetic score: {result['aesthetic_score']:.3f}")
    elif schema == "labels_v1":
        labels = result.get("labels", [])
        width = max([len(str(item.get("label", ""))) for item in labels] + [5])
        lines.append(f"{'label'.ljust(width)}  score")
        lines += [
            f"{str(item.get('label', '')).ljust(width)}  {float(item.get('score', 0)):.4f}" for item in labels
        ]
        lines.append(f"model {result.get('model_id', '?')}")
    elif schema == "face_v1":
        faces = result.get("faces", [])
        lines.append(f"{result.get('count', len(faces))} face(s), model {result.get('model_id', '?')}")
        for index, face in enumerate(faces, 1):
            box = ", ".join(f"{v:.0f}" for v in face.get("bbox", []))
            extra = f", embedding dim {len(face['embedding'])}" if face.get("embedding") else ""
            lines.append(f"  {index}. box [{box}] confidence {float(face.get('confidence', 0)):.3f}{extra}")
    elif schema == "ocr_v1":
        items = result.get("items", [])
        lines.append(f"{result.get('count', len(items))} text line(s), model {result.get('model_id', '?')}")
        for item in items:
            box = " ".join(f"({p[0]},{p[1]})" for p in item.get("box", []))
            lines.append(
                f"  {item.get('text', '')!r} confidence {float(item.get('confidence', 0)):.3f} box {box}"
            )
    elif schema == "text_generation_v1":
        lines.append(str(result.get("text", "")))
        lines.append(
            f"finish: {result.get('finish_reason', '?')}, tokens {result.get('generated_tokens', '?')}"
        )
    else:
        lines.append(json.dumps(result, indent=2, ensure_ascii=False))
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from proto.gen.lumen.node.v1 import node_pb2 as pb
    from proto.gen.lumen.node.v1 import node_pb2_grpc as pb_grpc

    target = args.target or default_target(args.config)
    with grpc.insecure_channel(target) as channel:
        try:
            info = pb_grpc.NodeStub(channel).GetNodeInfo(pb.GetNodeInfoRequest(), timeout=10)
        except grpc.RpcError as exc:
            return _fail("status", exc, target)
    if args.json:
        print(json_format.MessageToJson(info, preserving_proto_field_name=True))
        return EXIT_OK
    gib = 1024**3
    print(
        f"node {info.name} ({info.node_id[:8]}) v{info.version}: {info.state}, up {_duration(info.uptime_s)}"
    )
    print(f"machine: {info.os} {info.os_release} {info.arch}, {info.cpu_count} CPUs ({info.cpu_model})")
    print(
        f"memory: {info.memory_available_bytes / gib:.1f} GiB free of {info.memory_total_bytes / gib:.1f} GiB"
    )
    accelerators = ", ".join(info.accelerators) or "none (CPU)"
    print(f"accelerators: {accelerators}; runtimes: {'; '.join(info.runtimes) or '-'}")
    for li in info.listeners:
        print(f"listening on {li.host}:{li.port}" + ("" if li.main else f" (only {', '.join(li.services)})"))
    c = info.counters
    print(f"requests: {c.total} total, {c.ok} ok, {c.failed} failed, {c.in_flight} in flight")
    if not info.services:
        print("services: none")
    for s in info.services:
        reason = f" ({s.reason})" if s.reason else ""
        models = ", ".join(s.model_ids) or "-"
        print(f"  {s.name:8} {s.state:12}{reason} models {models} {s.runtime}".rstrip())
        if s.counters.total:
            print(f"           {s.counters.ok} ok / {s.counters.failed} failed of {s.counters.total}")
    return EXIT_OK


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
