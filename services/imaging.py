"""Image payloads → RGB :class:`PIL.Image.Image`, safely.

Accepted: JPEG (also the MPO variant phones write), PNG, WebP, and AVIF when this Pillow
has the AVIF codec. The payload size is bounded first, then the header is read and the pixel
count checked *before* any pixels are decoded (decompression bombs), then the image is decoded,
rotated per its EXIF orientation and converted to RGB. Every failure is an
:class:`~services.api.InvalidInput` that says what was wrong and what is allowed.

:func:`decode_image` blocks (it decodes); callers run it in an executor.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError, features

from services.api import InvalidInput

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


def decode_image(data: bytes, mime: str = "", limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Decode ``data`` into an RGB image (EXIF orientation applied). ``mime`` is advisory:
    the bytes decide the format, but a non-image mime is refused."""
    formats = supported_formats()
    allowed = ", ".join(sorted(set(formats.values())))
    base = mime.split(";", 1)[0].strip().lower()
    if base and not (base.startswith("image/") or base == "application/octet-stream"):
        raise InvalidInput(f"payload mime {mime!r} is not an image; send one of: {allowed}")
    if not data:
        raise InvalidInput("the image payload is empty")
    if len(data) > limits.max_bytes:
        raise InvalidInput(f"the image payload is {len(data)} bytes; at most {limits.max_bytes} are accepted")
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
        try:
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return image if image.mode == "RGB" else image.convert("RGB")
        except Image.DecompressionBombError as exc:
            raise InvalidInput(f"the image is too large: {exc}") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InvalidInput(f"the {image.format or 'image'} data is truncated or corrupt: {exc}") from None
