"""CLIP image preprocessing: resize (open_clip ``shortest`` / ``squash`` / ``longest``), crop,
scale to [0, 1], normalise with mean/std, lay out as CHW float32.

``shortest`` follows open_clip / torchvision: the short side becomes the target size, the long
side ``int(size * long / short)``, then a centre crop (offsets rounded). ``squash`` resizes
straight to the target. ``longest`` fits the long side and pads the rest with ``fill``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

OPENAI_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

RESIZE_MODES: tuple[str, ...] = ("shortest", "squash", "longest")
INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
# PIL's integer codes, as Lumen-Hub's ``resample`` may give them.
_PIL_CODES: dict[int, str] = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def interpolation_name(value: object) -> str:
    """``"bicubic"``, ``3`` or ``"BICUBIC"`` → ``"bicubic"``; ValueError naming what is allowed."""
    if isinstance(value, int) and not isinstance(value, bool) and value in _PIL_CODES:
        return _PIL_CODES[value]
    if isinstance(value, str) and value.strip().lower() in INTERPOLATIONS:
        return value.strip().lower()
    raise ValueError(f"interpolation {value!r} is not one of {', '.join(INTERPOLATIONS)} (or PIL codes 0-5)")


@dataclass(frozen=True)
class ImagePreprocess:
    height: int = 224
    width: int = 224
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    fill: int = 0
    source: str = "defaults"  # where the settings came from (shown in logs)

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode {self.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}"
            )
        if self.height < 1 or self.width < 1:
            raise ValueError(f"image size must be positive (got {self.height}x{self.width})")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            raise ValueError(f"mean and std need 3 values each, std non-zero (got {self.mean}, {self.std})")

    def resize(self, image: Image.Image) -> Image.Image:
        """Resize (and crop / pad) ``image`` to ``width`` x ``height``."""
        resample = INTERPOLATIONS[self.interpolation]
        w, h = image.size
        tw, th = self.width, self.height
        if self.resize_mode == "squash":
            return image.resize((tw, th), resample) if (w, h) != (tw, th) else image
        if self.resize_mode == "shortest":
            if tw == th:
                short, long = (w, h) if w <= h else (h, w)
                new_short, new_long = tw, int(tw * long / short)
                nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
            else:
                scale = max(tw / w, th / h)
                nw, nh = max(tw, int(w * scale)), max(th, int(h * scale))
            resized = image.resize((nw, nh), resample) if (nw, nh) != (w, h) else image
            top = int(round((nh - th) / 2.0))
            left = int(round((nw - tw) / 2.0))
            return resized.crop((left, top, left + tw, top + th))
        scale = min(tw / w, th / h)  # longest: fit inside, pad
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = image.resize((nw, nh), resample) if (nw, nh) != (w, h) else image
        canvas = Image.new("RGB", (tw, th), (self.fill,) * 3)
        canvas.paste(resized, ((tw - nw) // 2, (th - nh) // 2))
        return canvas

    def to_tensor(self, image: Image.Image) -> np.ndarray:
        """``image`` (RGB) → float32 array ``[3, height, width]``, normalised."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies, even RGB
        pixels = np.asarray(self.resize(rgb)).transpose(2, 0, 1)  # uint8 CHW view
        # (p / 255 - mean) / std as one multiply-add written straight into the CHW result
        # (equal to the three-step form within float32 rounding; a quarter of its time)
        std = np.asarray(self.std, dtype=np.float64)
        scale = (1.0 / (255.0 * std)).astype(np.float32)[:, None, None]
        offset = (-np.asarray(self.mean, dtype=np.float64) / std).astype(np.float32)[:, None, None]
        out = np.empty(pixels.shape, dtype=np.float32)
        np.multiply(pixels, scale, out=out)
        out += offset
        return out
