"""Where a CLIP model folder says how to preprocess images and text (MODEL_FORMATS §2, §8.5).

Image settings, first source that has them: the Lumen-Hub ``task_metadata.tasks.<task>.preprocess``
block → ``open_clip_config.json`` (``preprocess_cfg`` + ``model_cfg.vision_cfg.image_size``) →
Hugging Face ``preprocessor_config.json`` → defaults (OpenAI mean/std, bicubic, shortest, 224).
Text: ``model_cfg.text_cfg.context_length`` (else the graph's static length, else 77).
The graph's static input sizes win over any file (feeding another size cannot work).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.clip.preprocess import OPENAI_MEAN, OPENAI_STD, ImagePreprocess, interpolation_name
from services.model_info import ModelInfo, per_channel

OPEN_CLIP_CONFIG = "open_clip_config.json"
HF_PREPROCESSOR_CONFIG = "preprocessor_config.json"
DEFAULT_CONTEXT_LENGTH = 77
DEFAULT_LOGIT_SCALE = math.log(100.0)  # 4.60517: CLIP's learned temperature, 100
MAX_CONFIG_BYTES = 4 * 1024 * 1024
IMAGE_TASKS = ("semantic_image_embed", "bioclip_classify", "clip_classify", "clip_image_embed")
TEXT_TASKS = ("semantic_text_embed", "clip_text_embed")


class ClipConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ClipConfig:
    preprocess: ImagePreprocess
    context_length: int | None  # None: not stated, use the graph's
    embed_dim: int | None
    logit_scale: float
    text_output: str | None = None  # output names from Hub task metadata, when given
    image_output: str | None = None


def read_json(path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ClipConfigError(f"{path.name} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClipConfigError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ClipConfigError(f"{path.name} must hold a JSON object")
    return data


def _size(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise ClipConfigError(f"{where} must be a size (got {value!r})")
    if isinstance(value, int) and value > 0:
        return value, value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and v > 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    if isinstance(value, Mapping):
        if "height" in value and "width" in value:
            return _size([value["height"], value["width"]], where)
        if "shortest_edge" in value:
            return _size(value["shortest_edge"], where)
    raise ClipConfigError(
        f"{where} must be a positive size, [height, width] or {{height, width}} (got {value!r})"
    )


def _triple(value: Any, where: str) -> tuple[float, float, float]:
    triple = per_channel(value)
    if triple is None:
        raise ClipConfigError(f"{where} must be 3 numbers (got {value!r})")
    return triple


def _hub_task(info: ModelInfo, names: tuple[str, ...]) -> Mapping[str, Any]:
    tasks = info.task_metadata.get("tasks")
    if isinstance(tasks, Mapping):
        for name in names:
            if isinstance(tasks.get(name), Mapping):
                return tasks[name]
    return {}


def _from_hub(block: Mapping[str, Any]) -> ImagePreprocess:
    where = "task_metadata preprocess"
    crop = block.get("crop_size") or block.get("resize_shortest_edge") or 224
    height, width = _size(crop, f"{where}.crop_size")
    center_crop = bool(block.get("do_center_crop", True))
    kwargs: dict[str, Any] = {
        "height": height,
        "width": width,
        "resize_mode": "shortest" if center_crop else "squash",
        "source": where,
    }
    if "resample" in block:
        kwargs["interpolation"] = interpolation_name(block["resample"])
    if block.get("do_normalize", True):
        kwargs["mean"] = _triple(block.get("image_mean", OPENAI_MEAN), f"{where}.image_mean")
        kwargs["std"] = _triple(block.get("image_std", OPENAI_STD), f"{where}.image_std")
    else:
        kwargs["mean"], kwargs["std"] = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return ImagePreprocess(**kwargs)


def _from_open_clip(data: Mapping[str, Any]) -> tuple[ImagePreprocess, int | None, int | None]:
    model_cfg = data.get("model_cfg") if isinstance(data.get("model_cfg"), Mapping) else data
    pre = data.get("preprocess_cfg") if isinstance(data.get("preprocess_cfg"), Mapping) else {}
    vision = model_cfg.get("vision_cfg") if isinstance(model_cfg.get("vision_cfg"), Mapping) else {}
    text = model_cfg.get("text_cfg") if isinstance(model_cfg.get("text_cfg"), Mapping) else {}
    size_value = pre.get("size") or vision.get("image_size") or model_cfg.get("image_size") or 224
    height, width = _size(size_value, f"{OPEN_CLIP_CONFIG}: image size")
    kwargs: dict[str, Any] = {"height": height, "width": width, "source": OPEN_CLIP_CONFIG}
    if "mean" in pre:
        kwargs["mean"] = _triple(pre["mean"], f"{OPEN_CLIP_CONFIG}: preprocess_cfg.mean")
    if "std" in pre:
        kwargs["std"] = _triple(pre["std"], f"{OPEN_CLIP_CONFIG}: preprocess_cfg.std")
    if "interpolation" in pre:
        kwargs["interpolation"] = interpolation_name(pre["interpolation"])
    if "resize_mode" in pre:
        kwargs["resize_mode"] = str(pre["resize_mode"]).lower()
    if isinstance(pre.get("fill_color"), int):
        kwargs["fill"] = pre["fill_color"]
    context = text.get("context_length")
    embed_dim = model_cfg.get("embed_dim")
    return (
        ImagePreprocess(**kwargs),
        context if isinstance(context, int) and context > 0 else None,
        embed_dim if isinstance(embed_dim, int) and embed_dim > 0 else None,
    )


def _from_hf(data: Mapping[str, Any]) -> ImagePreprocess:
    size = _size(data.get("crop_size") or data.get("size") or 224, f"{HF_PREPROCESSOR_CONFIG}: crop_size")
    kwargs: dict[str, Any] = {
        "height": size[0],
        "width": size[1],
        "resize_mode": "shortest" if data.get("do_center_crop", True) else "squash",
        "source": HF_PREPROCESSOR_CONFIG,
    }
    if "image_mean" in data:
        kwargs["mean"] = _triple(data["image_mean"], f"{HF_PREPROCESSOR_CONFIG}: image_mean")
    if "image_std" in data:
        kwargs["std"] = _triple(data["image_std"], f"{HF_PREPROCESSOR_CONFIG}: image_std")
    if "resample" in data:
        kwargs["interpolation"] = interpolation_name(data["resample"])
    return ImagePreprocess(**kwargs)


def read_clip_config(model_dir: Path, info: ModelInfo) -> ClipConfig:
    """The preprocessing of the model in ``model_dir``; :class:`ClipConfigError` names the file."""
    image_task = _hub_task(info, IMAGE_TASKS)
    text_task = _hub_task(info, TEXT_TASKS)
    context_length: int | None = None
    embed_dim: int | None = info.embedding_dim
    try:
        preprocess: ImagePreprocess | None = None
        if isinstance(image_task.get("preprocess"), Mapping):
            preprocess = _from_hub(image_task["preprocess"])
        open_clip = model_dir / OPEN_CLIP_CONFIG
        if open_clip.is_file():
            from_file, context_length, dim = _from_open_clip(read_json(open_clip))
            preprocess = preprocess or from_file
            embed_dim = embed_dim or dim
        hf = model_dir / HF_PREPROCESSOR_CONFIG
        if preprocess is None and hf.is_file():
            preprocess = _from_hf(read_json(hf))
        preprocess = preprocess or ImagePreprocess()
    except ValueError as exc:
        raise ClipConfigError(str(exc)) from None
    logit_scale = _logit_scale(info, image_task)
    return ClipConfig(
        preprocess=preprocess,
        context_length=context_length,
        embed_dim=embed_dim,
        logit_scale=logit_scale,
        text_output=_text(text_task.get("output_name")),
        image_output=_text(image_task.get("output_name")),
    )


def _logit_scale(info: ModelInfo, image_task: Mapping[str, Any]) -> float:
    for value in (image_task.get("logit_scale"), info.task_metadata.get("logit_scale")):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return DEFAULT_LOGIT_SCALE


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
