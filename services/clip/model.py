"""A CLIP-family model folder: which files it needs (:func:`plan_model`) and the loaded encoders
(:class:`ClipModel`).

Layout (DESIGN §5, MODEL_FORMATS §2, §4): ``model_info.json``; weights per runtime as
``model_info`` lists them (``onnx/text.<p>.onnx`` + ``onnx/vision.<p>.onnx``,
``rknn/<soc>/vision.<p>.rknn``, TorchScript ``torch/<component>[.<p>].pt`` or ``torch/model.pt``);
``tokenizer.json`` for the text encoder; ``open_clip_config.json`` (or a Hub preprocess block /
``preprocessor_config.json``) for preprocessing; datasets for classification.

Encoders: text takes int64 (or int32) ids ``[B, L]`` (and ``attention_mask`` when the graph has
that input); vision takes float NCHW ``[B, 3, H, W]``; both give ``[B, D]``. Outputs are
L2-normalised here (rows with norm ≤ 1e-12 are left as they are). A graph with a fixed batch of
1 is run one item at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.clip.config import DEFAULT_CONTEXT_LENGTH, ClipConfig, ClipConfigError, read_clip_config
from services.clip.dataset import DatasetError, DatasetFiles, LabelSet, load_label_set, locate_dataset
from services.clip.preprocess import ImagePreprocess
from services.clip.tokenize import ClipTokenizer
from services.component_files import ComponentNotFound, candidate_files, find_component
from services.imaging import ImageLimits, decode_image
from services.model_info import ModelInfo, ModelInfoError, load_model_info
from services.runtimes import RuntimeOptions, Session, TensorInfo, open_session
from services.service import ModelUnavailable
from services.vectors import l2_normalise

log = logging.getLogger(__name__)

SessionFactory = Callable[..., Session]
TOKENIZER_FILE = "tokenizer.json"
COMPONENT_NAMES: dict[str, tuple[str, ...]] = {
    "text": ("text", "textual", "text_encoder"),
    "vision": ("vision", "visual", "image", "image_encoder"),
}
TORCH_METHODS = {"text": "encode_text", "vision": "encode_image"}


@dataclass(frozen=True)
class ModelPlan:
    """What loading one CLIP-family model needs, resolved against its folder."""

    root: Path
    info: ModelInfo
    runtime: str
    weights: dict[str, Path]  # "text" / "vision" → file
    methods: dict[str, str]  # torch: TorchScript method per component ("forward" for own files)
    precision: str
    tokenizer: Path | None
    dataset: DatasetFiles | None
    config: ClipConfig = field(repr=False)


def plan_model(
    root: Path,
    runtime: str,
    *,
    precision: str | None,
    device: str | None,
    need_text: bool,
    dataset: str | None,
) -> ModelPlan:
    """Check a model folder; :class:`ModelUnavailable` says exactly what is missing or wrong."""
    if not root.is_dir():
        raise ModelUnavailable(f"model folder {root} does not exist (download the model first)")
    if not (root / "model_info.json").is_file():
        raise ModelUnavailable(f"model folder {root} has no model_info.json (incomplete download?)")
    needed = ("text", "vision") if need_text else ("vision",)
    weights: dict[str, Path] = {}
    methods: dict[str, str] = {}
    chosen_precision = ""
    try:
        info = load_model_info(root)
        pool = candidate_files(root, runtime, info, device=device)
        for component in needed:
            names = COMPONENT_NAMES[component] + (("model",) if runtime == "torch" else ())
            chosen = find_component(
                root, names, runtime=runtime, precision=precision, candidates=pool, required=False
            )
            if chosen is None:
                continue
            weights[component] = chosen.path
            methods[component] = TORCH_METHODS[component] if chosen.component == "model" else "forward"
            chosen_precision = chosen_precision or chosen.precision
    except (ModelInfoError, ComponentNotFound) as exc:
        raise ModelUnavailable(str(exc), retry=False) from None
    absent = [c for c in needed if c not in weights]
    if absent:
        raise ModelUnavailable(
            f"model {info.name!r} lists no {runtime} {' or '.join(absent)} encoder "
            f"(its {runtime} files: {', '.join(wf.path for wf in pool.files)})",
            retry=False,
        )
    missing = [str(weights[c].relative_to(root)) for c in needed if not weights[c].is_file()]
    tokenizer = root / TOKENIZER_FILE if need_text else None
    if tokenizer is not None and not tokenizer.is_file():
        missing.append(TOKENIZER_FILE)
    dataset_files = None
    if dataset:
        try:
            dataset_files = locate_dataset(root, info, dataset)
        except DatasetError as exc:
            raise ModelUnavailable(str(exc)) from None
        missing += [
            str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in dataset_files.missing()
        ]
    if missing:
        raise ModelUnavailable(f"model folder {root} is missing {', '.join(missing)}")
    try:
        config = read_clip_config(root, info)
    except ClipConfigError as exc:
        raise ModelUnavailable(f"model {info.name!r}: {exc}", retry=False) from None
    return ModelPlan(
        root=root,
        info=info,
        runtime=runtime,
        weights=weights,
        methods=methods,
        precision=chosen_precision or "fp32",
        tokenizer=tokenizer,
        dataset=dataset_files,
        config=config,
    )


class _Encoder:
    """One encoder session: feeds, dtype casts, fixed-batch looping, output pick."""

    def __init__(self, session: Session, output: str | None) -> None:
        self.session = session
        self.input = session.inputs[0]
        names = [o.name for o in session.outputs]
        self.output = output if output in names else None
        self.fixed_batch = self.input.static_dims[:1] == (1,)
        self.extra_inputs = list(session.inputs[1:])

    def run(self, batch: np.ndarray, extras: dict[str, np.ndarray] | None = None) -> np.ndarray:
        if self.fixed_batch and len(batch) > 1:
            return np.concatenate(
                [
                    self.run(batch[i : i + 1], {k: v[i : i + 1] for k, v in (extras or {}).items()})
                    for i in range(len(batch))
                ]
            )
        feeds = {self.input.name: batch.astype(self.input.dtype, copy=False)}
        for info in self.extra_inputs:
            if extras and info.name in extras:
                feeds[info.name] = extras[info.name].astype(info.dtype, copy=False)
        out = self.session.run(feeds, [self.output] if self.output else None)[0]
        out = np.asarray(out)
        if out.ndim == 3:  # [B, 1, D]
            out = out.reshape(out.shape[0], -1)
        if out.ndim != 2 or out.shape[0] != len(batch):
            raise ValueError(f"encoder output has shape {out.shape}; expected [{len(batch)}, dim]")
        return out

    def close(self) -> None:
        self.session.close()


class ClipModel:
    """Loaded CLIP-family encoders (+ label set). Methods block; the host calls them in executors."""

    def __init__(
        self,
        plan: ModelPlan,
        options: RuntimeOptions,
        *,
        session_factory: SessionFactory = open_session,
        image_limits: ImageLimits = ImageLimits(),
    ) -> None:
        self.plan = plan
        self.image_limits = image_limits
        self.text: _Encoder | None = None
        self.vision: _Encoder | None = None
        self.labels: LabelSet | None = None
        self.tokenizer: ClipTokenizer | None = None
        self.logit_scale = plan.config.logit_scale
        pre = plan.config.preprocess
        try:
            vision_session = session_factory(
                plan.weights["vision"],
                plan.runtime,
                options,
                inputs=(
                    TensorInfo(
                        "pixel_values",
                        (1 if plan.runtime == "rknn" else "batch", 3, pre.height, pre.width),
                        "float32",
                    ),
                ),
                method=plan.methods.get("vision", "forward"),
            )
            self.vision = _Encoder(vision_session, plan.config.image_output)
            self.preprocess = self._fit_preprocess(pre, self.vision.input)
            if "text" in plan.weights:
                context = plan.config.context_length or DEFAULT_CONTEXT_LENGTH
                text_session = session_factory(
                    plan.weights["text"],
                    plan.runtime,
                    options,
                    inputs=(
                        TensorInfo("input_ids", (1 if plan.runtime == "rknn" else "batch", context), "int64"),
                    ),
                    method=plan.methods.get("text", "forward"),
                )
                self.text = _Encoder(text_session, plan.config.text_output)
                graph_len = self.text.input.static_dims[1] if len(self.text.input.shape) > 1 else None
                if graph_len and graph_len != context:
                    log.warning(
                        "%s: text graph takes %d tokens, config says %d; using the graph's",
                        plan.info.name,
                        graph_len,
                        context,
                    )
                    context = graph_len
                assert plan.tokenizer is not None
                self.tokenizer = ClipTokenizer(plan.tokenizer, context)
            self.runtime = vision_session.runtime
            self.dim = self._probe_dim()
            if plan.dataset is not None:
                self.labels = load_label_set(plan.dataset)
                if self.labels.dim != self.dim:
                    raise DatasetError(
                        f"dataset {plan.dataset.name!r} has dim {self.labels.dim} "
                        f"but the model embeds in {self.dim}"
                    )
        except BaseException:
            self.close()
            raise
        log.info(
            "%s: %s, dim %d, image %dx%d %s/%s (%s)%s",
            plan.info.name,
            self.runtime,
            self.dim,
            self.preprocess.width,
            self.preprocess.height,
            self.preprocess.resize_mode,
            self.preprocess.interpolation,
            self.preprocess.source,
            f", {len(self.labels)} labels" if self.labels is not None else "",
        )

    @staticmethod
    def _fit_preprocess(pre: ImagePreprocess, graph_input: TensorInfo) -> ImagePreprocess:
        dims = graph_input.static_dims
        if len(dims) == 4 and dims[2] and dims[3] and (dims[2], dims[3]) != (pre.height, pre.width):
            log.warning(
                "vision graph takes %sx%s, config says %dx%d; using the graph's",
                dims[3],
                dims[2],
                pre.width,
                pre.height,
            )
            from dataclasses import replace

            return replace(pre, height=int(dims[2]), width=int(dims[3]))
        return pre

    def _probe_dim(self) -> int:
        """The embedding dim: from the graphs' static output shapes, else by a probe run."""
        dims: dict[str, int] = {}
        for kind, encoder in (("vision", self.vision), ("text", self.text)):
            if encoder is None:
                continue
            outputs = encoder.session.outputs
            chosen = next((o for o in outputs if o.name == encoder.output), outputs[0] if outputs else None)
            static = chosen.static_dims if chosen is not None else ()
            if static and static[-1]:
                dims[kind] = int(static[-1])
        if "vision" not in dims and self.vision is not None:
            probe = np.zeros((1, 3, self.preprocess.height, self.preprocess.width), dtype=np.float32)
            dims["vision"] = int(self.vision.run(probe).shape[1])
        if "text" not in dims and self.text is not None and self.tokenizer is not None:
            ids, mask = self.tokenizer.encode([""])
            dims["text"] = int(self.text.run(ids, {"attention_mask": mask}).shape[1])
        if len(set(dims.values())) > 1:
            raise ValueError(
                f"the text encoder embeds in {dims['text']} dims but the vision encoder in {dims['vision']}"
            )
        return dims["vision"]

    # ------------------------------------------------------------------ blocking work

    def prepare_image(
        self, payload: bytes, mime: str = "", meta: Mapping[str, str] | None = None
    ) -> np.ndarray:
        """Decode + preprocess one image → ``[3, H, W]`` float32. A large JPEG is decoded at
        a reduced scale that keeps at least twice the model's input size (the resize that
        follows would throw those pixels away anyway)."""
        pre = self.preprocess
        reduce_to = 2 * max(pre.width, pre.height)
        return pre.to_tensor(decode_image(payload, mime, self.image_limits, meta, reduce_to=reduce_to))

    def encode_images(self, tensors: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.vision is None:
            raise RuntimeError(
                f"the model in {self.plan.root} was unloaded (closed): its image encoder is gone; "
                "take a new lease from the service host, which loads it again"
            )
        return list(l2_normalise(self.vision.run(np.stack(tensors))))

    def encode_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        if self.text is None or self.tokenizer is None:
            raise ValueError("this model has no text encoder")
        ids, mask = self.tokenizer.encode(texts)
        return list(l2_normalise(self.text.run(ids, {"attention_mask": mask})))

    def classify(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        if self.labels is None:
            raise ValueError("no dataset is configured for this model")
        return self.labels.top_k(vector, k, self.logit_scale)

    def close(self) -> None:
        for encoder in (self.text, self.vision):
            if encoder is not None:
                encoder.close()
        self.text = self.vision = None
        self.labels = None
        self.tokenizer = None
