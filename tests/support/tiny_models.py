"""Tiny but complete CLIP / BioCLIP model folders for tests (no downloads, real onnxruntime).

:func:`write_clip_model` lays out ``<root>/<name>/`` exactly as a Lumilio repository does::

    model_info.json            Python-Lumen dialect (runtimes.onnx.files, datasets)
    open_clip_config.json      model_cfg {embed_dim, vision_cfg.image_size, text_cfg.context_length}
                               + preprocess_cfg {mean, std, interpolation, resize_mode}
    tokenizer.json             a WordLevel tokenizer built with ``tokenizers`` (lower-cases,
                               adds <|startoftext|> ... <|endoftext|>)
    onnx/text.<p>.onnx         int64 input_ids [B, L] -> text_embeds [B, D]
    onnx/vision.<p>.onnx       float32 pixel_values [B, 3, S, S] -> image_embeds [B, D]
    <dataset>.npz              labels + embeddings (clip), or
    <dataset>.json + .npy      TreeOfLife-style labels + embeddings (bioclip)

The networks are linear so that tests can compute expected embeddings independently:
text = (sum of token embeddings, pad row 0 is zero) @ P; vision = flatten(pixels) @ W + b.
:class:`TinyClip` keeps the weights and offers :meth:`TinyClip.reference_image_embedding` and
:meth:`TinyClip.reference_text_embedding`. :func:`vit_vision_graph` builds a real-compute
CLIP ViT-B/32-shaped vision graph for benchmarks. Used by the service, gRPC and cluster tests.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.api import ModelSpec, ServiceSpec

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
SPECIAL_TOKENS = ("<pad>", "<|startoftext|>", "<|endoftext|>", "<unk>")
DEFAULT_WORDS = (
    "a photo of cat dog bird car tree house person beach mountain sunset flower red blue green "
    "the on in with and at night day snow city river"
).split()
OPSET = 17


@dataclass(frozen=True)
class TinyClip:
    """A model folder written by :func:`write_clip_model`, with its weights."""

    path: Path
    name: str
    kind: str  # "clip" | "bioclip"
    dim: int
    image_size: int
    context_length: int
    vocab: Mapping[str, int]
    token_embeddings: np.ndarray  # [V, D]
    text_projection: np.ndarray  # [D, D]
    vision_weight: np.ndarray  # [3*S*S, D]
    vision_bias: np.ndarray  # [D]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str
    interpolation: str
    dataset: str | None = None
    labels: tuple[str, ...] = ()
    label_embeddings: np.ndarray | None = field(default=None, repr=False)

    def model_spec(self, alias: str = "default", *, runtime: str = "onnx", **overrides: object) -> ModelSpec:
        values: dict[str, object] = {
            "alias": alias,
            "model": self.name,
            "runtime": runtime,
            "path": self.path,
            "dataset": self.dataset,
        }
        values.update(overrides)
        return ModelSpec(**values)  # type: ignore[arg-type]

    def service_spec(self, service: str | None = None, **model_overrides: object) -> ServiceSpec:
        spec = self.model_spec(**model_overrides)  # type: ignore[arg-type]
        return ServiceSpec(name=service or self.kind, models=(spec,), default_model=spec.alias)

    def token_ids(self, text: str) -> list[int]:
        """What the tokenizer gives (lower-cased words, unknown → <unk>, start/end tokens)."""
        words = [self.vocab.get(w, self.vocab["<unk>"]) for w in text.lower().split()]
        return [self.vocab["<|startoftext|>"], *words, self.vocab["<|endoftext|>"]]

    def reference_text_embedding(self, ids: Sequence[int]) -> np.ndarray:
        raw = self.token_embeddings[np.asarray(ids, dtype=np.int64)].sum(axis=0) @ self.text_projection
        return _unit(raw)

    def reference_image_embedding(self, pixels_chw: np.ndarray) -> np.ndarray:
        raw = pixels_chw.reshape(-1).astype(np.float32) @ self.vision_weight + self.vision_bias
        return _unit(raw)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------------------
# graphs
# ------------------------------------------------------------------------------------------


def _save(model: object, path: Path) -> None:
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)  # type: ignore[arg-type]
    onnx.save(model, str(path))  # type: ignore[arg-type]


def text_graph(
    token_embeddings: np.ndarray, projection: np.ndarray, context_length: int, *, batch: object = "batch"
) -> object:
    """int64 ``input_ids [B, L]`` → ``text_embeds [B, D]`` = sum of token rows @ projection."""
    from onnx import TensorProto, helper, numpy_helper

    dim = projection.shape[1]
    nodes = [
        helper.make_node("Gather", ["token_embedding", "input_ids"], ["tokens"], axis=0),
        helper.make_node("ReduceSum", ["tokens", "sum_axes"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "text_projection"], ["text_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, context_length])],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, [batch, dim])],
        initializer=[
            numpy_helper.from_array(token_embeddings.astype(np.float32), "token_embedding"),
            numpy_helper.from_array(projection.astype(np.float32), "text_projection"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "sum_axes"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=9)


def vision_graph(weight: np.ndarray, bias: np.ndarray, image_size: int, *, batch: object = "batch") -> object:
    """float32 ``pixel_values [B, 3, S, S]`` → ``image_embeds [B, D]`` = flatten @ W + b."""
    from onnx import TensorProto, helper, numpy_helper

    dim = weight.shape[1]
    nodes = [
        helper.make_node("Flatten", ["pixel_values"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "vision_weight"], ["projected"]),
        helper.make_node("Add", ["projected", "vision_bias"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_vision",
        [
            helper.make_tensor_value_info(
                "pixel_values", TensorProto.FLOAT, [batch, 3, image_size, image_size]
            )
        ],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, [batch, dim])],
        initializer=[
            numpy_helper.from_array(weight.astype(np.float32), "vision_weight"),
            numpy_helper.from_array(bias.astype(np.float32), "vision_bias"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=9)


def vit_vision_graph(
    *,
    image_size: int = 224,
    patch: int = 32,
    width: int = 768,
    layers: int = 12,
    heads: int = 12,
    mlp: int = 3072,
    embed_dim: int = 512,
    seed: int = 0,
) -> object:
    """A CLIP ViT-B/32-shaped vision encoder with random weights and the real amount of compute:
    patch-embedding conv, class token + positions, pre-LN transformer blocks (multi-head
    attention, GELU MLP), final LN on the class token, projection to ``embed_dim``.
    Input ``pixel_values [B, 3, S, S]`` float32, output ``image_embeds [B, embed_dim]``."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    tokens = (image_size // patch) ** 2 + 1
    head_dim = width // heads
    inits: list[object] = []
    nodes: list[object] = []

    def weight(name: str, shape: tuple[int, ...], scale: float = 0.02) -> str:
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def layer_norm(x: str, name: str) -> str:
        scale = const(f"{name}.g", np.ones(width, dtype=np.float32))
        shift = const(f"{name}.b", np.zeros(width, dtype=np.float32))
        return node("LayerNormalization", [x, scale, shift], f"{name}.out", axis=-1, epsilon=1e-5)

    def linear(x: str, name: str, fan_in: int, fan_out: int) -> str:
        w = weight(f"{name}.w", (fan_in, fan_out))
        b = const(f"{name}.b", np.zeros(fan_out, dtype=np.float32))
        return node("Add", [node("MatMul", [x, w], f"{name}.mm"), b], f"{name}.out")

    conv = node(
        "Conv",
        ["pixel_values", weight("patch.w", (width, 3, patch, patch))],
        "patch.out",
        strides=[patch, patch],
    )
    flat = node(
        "Reshape", [conv, const("shape.patches", np.array([0, width, -1], dtype=np.int64))], "patch.flat"
    )
    seq = node("Transpose", [flat], "patch.seq", perm=[0, 2, 1])  # [B, N, W]
    batch_dim = node("Shape", ["pixel_values"], "batch.dim", start=0, end=1)
    cls_shape = node(
        "Concat",
        [batch_dim, const("shape.cls_tail", np.array([1, width], dtype=np.int64))],
        "cls.shape",
        axis=0,
    )
    cls = node("Expand", [weight("cls", (1, 1, width)), cls_shape], "cls.tokens")
    x = node("Concat", [cls, seq], "tokens.cat", axis=1)
    x = node("Add", [x, weight("pos", (1, tokens, width))], "tokens.pos")
    x = layer_norm(x, "ln_pre")
    heads_shape = const("shape.heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_shape = const("shape.merge", np.array([0, 0, width], dtype=np.int64))
    scale = const("attn.scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
    for i in range(layers):
        p = f"block{i}"
        h = layer_norm(x, f"{p}.ln1")
        qkv = []
        for part in ("q", "k", "v"):
            projected = linear(h, f"{p}.{part}", width, width)
            split = node("Reshape", [projected, heads_shape], f"{p}.{part}.split")
            qkv.append(node("Transpose", [split], f"{p}.{part}.heads", perm=[0, 2, 1, 3]))
        q, k, v = qkv
        kt = node("Transpose", [k], f"{p}.kt", perm=[0, 1, 3, 2])
        scores = node("Mul", [node("MatMul", [q, kt], f"{p}.qk"), scale], f"{p}.scores")
        attn = node("Softmax", [scores], f"{p}.attn", axis=-1)
        ctx = node("Transpose", [node("MatMul", [attn, v], f"{p}.ctx")], f"{p}.ctx.t", perm=[0, 2, 1, 3])
        merged = node("Reshape", [ctx, merge_shape], f"{p}.merged")
        x = node("Add", [x, linear(merged, f"{p}.o", width, width)], f"{p}.res1")
        h = layer_norm(x, f"{p}.ln2")
        up = linear(h, f"{p}.fc1", width, mlp)
        # GELU (erf form): 0.5 * x * (1 + erf(x / sqrt(2)))
        erf = node(
            "Erf",
            [node("Mul", [up, const(f"{p}.isqrt2", np.array(1 / np.sqrt(2), np.float32))], f"{p}.gs")],
            f"{p}.erf",
        )
        gelu = node(
            "Mul",
            [
                node("Mul", [up, const(f"{p}.half", np.array(0.5, np.float32))], f"{p}.gh"),
                node("Add", [erf, const(f"{p}.one", np.array(1.0, np.float32))], f"{p}.g1"),
            ],
            f"{p}.gelu",
        )
        x = node("Add", [x, linear(gelu, f"{p}.fc2", mlp, width)], f"{p}.res2")
    cls_out = node("Gather", [x, const("cls.index", np.array(0, dtype=np.int64))], "cls.out", axis=1)
    cls_out = layer_norm(cls_out, "ln_post")
    node("MatMul", [cls_out, weight("proj", (width, embed_dim))], "image_embeds")
    graph = helper.make_graph(
        nodes,  # type: ignore[arg-type]
        "vit_b32_vision",
        [
            helper.make_tensor_value_info(
                "pixel_values", TensorProto.FLOAT, ["batch", 3, image_size, image_size]
            )
        ],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", embed_dim])],
        initializer=inits,  # type: ignore[arg-type]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=9)


# ------------------------------------------------------------------------------------------
# folder
# ------------------------------------------------------------------------------------------


def write_tokenizer(path: Path, words: Sequence[str] = DEFAULT_WORDS) -> dict[str, int]:
    """A WordLevel ``tokenizer.json``: lower-case, whitespace split, ``<|startoftext|> $A
    <|endoftext|>``. Returns the vocabulary (pad = 0)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[
            ("<|startoftext|>", vocab["<|startoftext|>"]),
            ("<|endoftext|>", vocab["<|endoftext|>"]),
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return vocab


def write_clip_model(
    root: Path,
    *,
    name: str = "tiny-clip",
    kind: str = "clip",
    dim: int = 8,
    image_size: int = 16,
    context_length: int = 8,
    precision: str = "fp32",
    resize_mode: str = "shortest",
    interpolation: str = "bicubic",
    mean: tuple[float, float, float] = OPENAI_MEAN,
    std: tuple[float, float, float] = OPENAI_STD,
    dataset: str | None = None,
    labels: Sequence[str] | Sequence[object] = (),
    label_embeddings: np.ndarray | None = None,
    with_text: bool = True,
    static_batch: bool = False,
    vision_model: object | None = None,
    seed: int = 0,
) -> TinyClip:
    """Write a complete model folder ``root/name`` and return its description.

    ``dataset`` (with ``labels``; ``label_embeddings`` default to random unit rows) adds a label
    set: ``<dataset>.npz`` for ``kind="clip"``, ``<dataset>.json`` + ``.npy`` (TreeOfLife label
    shapes allowed) for ``kind="bioclip"``. ``static_batch`` fixes the graphs' batch to 1.
    ``vision_model`` replaces the tiny vision graph (e.g. :func:`vit_vision_graph`)."""
    rng = np.random.default_rng(seed)
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(path / "tokenizer.json")
    token_embeddings = rng.standard_normal((len(vocab), dim)).astype(np.float32)
    token_embeddings[vocab["<pad>"]] = 0.0
    projection = rng.standard_normal((dim, dim)).astype(np.float32)
    if vision_model is None:
        vision_weight = (rng.standard_normal((3 * image_size * image_size, dim)) * 0.05).astype(np.float32)
        vision_bias = rng.standard_normal(dim).astype(np.float32) * 0.1
    else:  # the given graph has its own weights
        vision_weight, vision_bias = np.zeros((0, dim), np.float32), np.zeros(dim, np.float32)
    batch: object = 1 if static_batch else "batch"
    files = [f"onnx/vision.{precision}.onnx"]
    _save(vision_model or vision_graph(vision_weight, vision_bias, image_size, batch=batch), path / files[0])
    if with_text:
        files.insert(0, f"onnx/text.{precision}.onnx")
        _save(text_graph(token_embeddings, projection, context_length, batch=batch), path / files[0])
    (path / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": {
                    "embed_dim": dim,
                    "vision_cfg": {"image_size": image_size, "patch_size": image_size},
                    "text_cfg": {"context_length": context_length, "vocab_size": len(vocab)},
                },
                "preprocess_cfg": {
                    "mean": list(mean),
                    "std": list(std),
                    "interpolation": interpolation,
                    "resize_mode": resize_mode,
                },
            },
            indent=2,
        )
    )
    datasets: dict[str, object] = {}
    stored_embeddings = None
    label_texts: tuple[str, ...] = ()
    if dataset:
        if not labels:
            raise ValueError("a dataset needs labels")
        stored_embeddings = (
            np.asarray(label_embeddings, dtype=np.float32)
            if label_embeddings is not None
            else _unit_rows(rng.standard_normal((len(labels), dim)))
        )
        if kind == "bioclip":
            (path / f"{dataset}.json").write_text(json.dumps(list(labels)))
            np.save(path / f"{dataset}.npy", stored_embeddings.astype(np.float16))
            datasets[dataset] = {"labels": f"{dataset}.json", "embeddings": f"{dataset}.npy"}
        else:
            np.savez(
                path / f"{dataset}.npz",
                labels=np.array([str(x) for x in labels]),
                embeddings=stored_embeddings,
            )
            datasets[dataset] = f"{dataset}.npz"
        label_texts = tuple(str(x) for x in labels)
    info = {
        "name": name,
        "version": "1.0.0",
        "description": f"tiny {kind} model for tests",
        "model_type": kind,
        "embedding_dim": dim,
        "source": {"format": "openclip", "repo_id": f"tests/{name}"},
        "runtimes": {"onnx": {"available": True, "files": files}},
        "datasets": datasets,
        "metadata": {"license": "MIT", "author": "tests"},
    }
    (path / "model_info.json").write_text(json.dumps(info, indent=2))
    return TinyClip(
        path=path,
        name=name,
        kind=kind,
        dim=dim,
        image_size=image_size,
        context_length=context_length,
        vocab=vocab,
        token_embeddings=token_embeddings,
        text_projection=projection,
        vision_weight=vision_weight,
        vision_bias=vision_bias,
        mean=mean,
        std=std,
        resize_mode=resize_mode,
        interpolation=interpolation,
        dataset=dataset,
        labels=label_texts,
        label_embeddings=stored_embeddings,
    )


TREE_OF_LIFE_LABELS: tuple[object, ...] = (
    [["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax"], "Common Raven"],
    [["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Felis", "catus"], "Domestic Cat"],
    [["Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Rosaceae", "Rosa", "canina"], ""],
    {
        "kingdom": "Fungi",
        "phylum": "Basidiomycota",
        "genus": "Amanita",
        "species": "muscaria",
        "common_name": "Fly agaric",
    },
)


def write_bioclip_model(
    root: Path, *, name: str = "tiny-bioclip", dataset: str = "TreeOfLife-200M", **kwargs: object
) -> TinyClip:
    """A BioCLIP folder (vision encoder only by default) with a TreeOfLife-style dataset."""
    kwargs.setdefault("labels", TREE_OF_LIFE_LABELS)
    kwargs.setdefault("with_text", False)
    return write_clip_model(root, name=name, kind="bioclip", dataset=dataset, **kwargs)  # type: ignore[arg-type]


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def image_bytes(
    width: int = 40, height: int = 30, *, fmt: str = "PNG", seed: int = 0, exif_orientation: int | None = None
) -> bytes:
    """A random RGB image encoded as ``fmt`` (PNG, JPEG, WEBP, AVIF), optionally EXIF-rotated."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    out = io.BytesIO()
    kwargs: dict[str, object] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    if fmt.upper() in ("JPEG", "WEBP", "AVIF"):
        kwargs["quality"] = 95
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()
