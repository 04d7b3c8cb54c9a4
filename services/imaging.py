"""Image payloads → RGB :class:`PIL.Image.Image`, safely.

Accepted: JPEG (also the MPO variant phones write), PNG, WebP, and AVIF when this Pillow
has the AVIF codec; and raw RGB pixels as Lumilio Photos sends them (mime
``application/x.rgb+uint8``, meta ``input_format=rgb_tensor``, ``tensor_width``,
``tensor_height``, ``tensor_channels=3``, ``tensor_dtype=uint8``, ``tensor_layout`` HWC or CHW,
``tensor_color_space`` RGB or BGR). The payload size is bounded first, then the header is read and the pixel
count checked *before* any pixels are decoded (decompression bombs), then the image is decoded,
rotated per its EXIF orientation and converted to RGB. Every failure is an
:class:`~services.api.InvalidInput` that says what was wrong and what is allowed.

:func:`decode_image` gives a Pillow image, :func:`decode_rgb_array` the same pixels as the numpy
``uint8 (H, W, 3)`` array the face and OCR pipelines take; :func:`ensure_rgb_image` is the one
check of such an array (pipelines called directly with arrays use it). All coordinates a service
returns are in pixels of the decoded, EXIF-oriented image.

Decoding blocks; callers run it in an executor.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from services.api import InvalidInput
from services.meta import meta_int

RGB_TENSOR_MIME = "application/x.rgb+uint8"

MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000  # e.g. 8660 x 5773; a 48 MP phone photo fits
MAX_IMAGE_SIDE = 20_000

_BASE_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
}


def avif_supported() -> bool:
    try:
        return bool(features.check("avif"))
    except (ValueError, KeyError):  # older Pillow: no such feature name
        return False


def supported_formats() -> dict[str, str]:
    """Pillow format name → mime type, for the formats this machine decodes."""
    formats = dict(_BASE_FORMATS)
    if avif_supported():
        formats["AVIF"] = "image/avif"
    return formats


def image_mimes() -> tuple[str, ...]:
    """The image mime types to declare on tasks (``image/webp`` first: what the Go SDK sends)."""
    order = ("image/webp", "image/jpeg", "image/png", "image/avif")
    offered = set(supported_formats().values())
    return tuple(m for m in order if m in offered)


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = MAX_IMAGE_BYTES
    max_pixels: int = MAX_IMAGE_PIXELS
    max_side: int = MAX_IMAGE_SIDE

    def as_task_limits(self) -> dict[str, str]:
        return {
            "max_payload_bytes": str(self.max_bytes),
            "max_pixels": str(self.max_pixels),
            "max_side": str(self.max_side),
        }


def decode_image(
    data: bytes,
    mime: str = "",
    limits: ImageLimits = ImageLimits(),
    meta: Mapping[str, str] | None = None,
    *,
    reduce_to: int = 0,
) -> Image.Image:
    """Decode ``data`` into an RGB image (EXIF orientation applied). ``mime`` is advisory:
    the bytes decide the format, but a non-image mime is refused. Raw RGB pixels are read
    when ``mime`` is :data:`RGB_TENSOR_MIME` or ``meta["input_format"]`` is ``rgb_tensor``.

    ``reduce_to`` (pixels, 0 = off) lets a JPEG be decoded at 1/2, 1/4 or 1/8 scale by libjpeg
    itself as long as both sides stay at least that long: a caller that will shrink the image
    to 224 px asks for 448 and a 12 MP photo decodes about four times faster, with the same
    pixels after the caller's resize to within a fraction of an 8-bit level. Other formats
    and smaller JPEGs decode at full size."""
    meta = meta or {}
    base = mime.split(";", 1)[0].strip().lower()
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"the image payload is {len(data)} bytes; at most {limits.max_bytes} are accepted")
    if base == RGB_TENSOR_MIME or meta.get("input_format", "").strip().lower() == "rgb_tensor":
        return _rgb_pixels(data, meta, limits)
    formats = supported_formats()
    allowed = ", ".join(sorted(set(formats.values())))
    if base and not (base.startswith("image/") or base == "application/octet-stream"):
        raise InvalidInput(f"payload mime {mime!r} is not an image; send one of: {allowed}")
    if not data:
        raise InvalidInput("the image payload is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[f for f in formats if f != "MPO"])
        except UnidentifiedImageError:
            raise InvalidInput(
                f"the payload is not a decodable image (declared {mime or 'no mime'}); accepted: {allowed}"
            ) from None
        except Image.DecompressionBombError as exc:
            raise InvalidInput(f"the image is too large: {exc}") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise InvalidInput(f"the image header is corrupt: {exc}") from None
        width, height = image.size
        if width < 1 or height < 1:
            raise InvalidInput(f"the image has no pixels ({width}x{height})")
        if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
            raise InvalidInput(
                f"the image is {width}x{height} pixels; at most {limits.max_pixels} pixels and "
                f"{limits.max_side} per side are accepted"
            )
        if reduce_to > 0:
            image.draft(None, (reduce_to, reduce_to))  # a no-op but for JPEG
        try:
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image)
        except Image.DecompressionBombError as exc:
            raise InvalidInput(f"the image is too large: {exc}") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InvalidInput(f"the {image.format or 'image'} data is truncated or corrupt: {exc}") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with 16/32-bit grey (``I;16``, ``I``: 16-bit PNGs, scans) scaled to 8 bits — Pillow's
    own conversion clips them, which turns most of a 16-bit photo white."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0
        image = Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), "L")
    return image.convert("RGB")


def decode_rgb_array(
    data: bytes,
    mime: str = "",
    limits: ImageLimits = ImageLimits(),
    meta: Mapping[str, str] | None = None,
) -> np.ndarray:
    """:func:`decode_image` as an RGB ``uint8`` ``(height, width, 3)`` array."""
    return ensure_rgb_image(np.asarray(decode_image(data, mime, limits, meta)))


def ensure_rgb_image(image: object, *, what: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous ``uint8`` ``(H, W, 3)`` array, or :class:`InvalidInput` naming
    what is wrong with it (pipelines take decoded, EXIF-oriented RGB arrays only)."""
    if not isinstance(image, np.ndarray):
        raise InvalidInput(f"{what} must be a numpy array (got {type(image).__name__})")
    if image.dtype != np.uint8:
        raise InvalidInput(f"{what} must have dtype uint8 (got {image.dtype})")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInput(
            f"{what} must be an RGB array of shape (height, width, 3) (got shape {tuple(image.shape)})"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidInput(f"{what} is empty (shape {tuple(image.shape)})")
    return np.ascontiguousarray(image)


def _rgb_pixels(data: bytes, meta: Mapping[str, str], limits: ImageLimits) -> Image.Image:
    width = meta_int(meta, "tensor_width", 0, low=1, high=limits.max_side)
    height = meta_int(meta, "tensor_height", 0, low=1, high=limits.max_side)
    channels = meta_int(meta, "tensor_channels", 3)
    if not width or not height:
        raise InvalidInput("raw RGB input needs meta 'tensor_width' and 'tensor_height'")
    dtype = meta.get("tensor_dtype", "uint8").strip().lower() or "uint8"
    layout = meta.get("tensor_layout", "HWC").strip().upper() or "HWC"
    colors = meta.get("tensor_color_space", "RGB").strip().upper() or "RGB"
    if channels != 3 or dtype != "uint8":
        raise InvalidInput(f"raw pixel input must be 3-channel uint8 (got {channels} channels of {dtype})")
    if layout not in ("HWC", "CHW") or colors not in ("RGB", "BGR"):
        raise InvalidInput(f"raw pixel layout must be HWC or CHW and RGB or BGR (got {layout} {colors})")
    if width * height > limits.max_pixels:
        raise InvalidInput(f"the image is {width}x{height} pixels; at most {limits.max_pixels} are accepted")
    if len(data) != width * height * 3:
        raise InvalidInput(
            f"raw RGB payload is {len(data)} bytes; {width}x{height}x3 needs {width * height * 3}"
        )
    pixels = np.frombuffer(data, dtype=np.uint8)
    pixels = (
        pixels.reshape(3, height, width).transpose(1, 2, 0)
        if layout == "CHW"
        else pixels.reshape(height, width, 3)
    )
    if colors == "BGR":
        pixels = pixels[:, :, ::-1]
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")
