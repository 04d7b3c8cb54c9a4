import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from services.api import InvalidInput
from services.imaging import (
    ImageLimits,
    avif_supported,
    decode_image,
    decode_rgb_array,
    ensure_rgb_image,
    image_mimes,
)
from tests.support.tiny_models import image_bytes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_common_formats_decode_to_rgb(fmt):
    image = decode_image(image_bytes(40, 30, fmt=fmt), f"image/{fmt.lower()}")
    assert image.mode == "RGB"
    assert image.size == (40, 30)


def test_avif_when_pillow_has_it():
    if not avif_supported():
        pytest.skip("this Pillow has no AVIF codec")
    assert "image/avif" in image_mimes()
    assert decode_image(image_bytes(24, 16, fmt="AVIF"), "image/avif").size == (24, 16)


def test_png_with_alpha_and_palette_become_rgb():
    for mode in ("RGBA", "P", "L"):
        buf = io.BytesIO()
        Image.new(mode, (5, 4)).save(buf, format="PNG")
        assert decode_image(buf.getvalue(), "image/png").mode == "RGB"


def test_exif_orientation_is_applied():
    raw = image_bytes(40, 20, fmt="JPEG", exif_orientation=6)  # 6 = rotate 90° clockwise to display
    stored = Image.open(io.BytesIO(raw))
    assert stored.size == (40, 20)
    decoded = decode_image(raw, "image/jpeg")
    assert decoded.size == (20, 40)
    expected = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    assert np.array_equal(np.asarray(decoded), expected)


def test_a_large_jpeg_may_be_decoded_at_a_reduced_scale_that_keeps_the_asked_size():
    raw = image_bytes(1000, 600, fmt="JPEG", exif_orientation=6)  # displayed 600 x 1000
    assert decode_image(raw, "image/jpeg").size == (600, 1000)
    # 1/2 keeps both sides >= 250 (1/4 would give 150); the EXIF rotation still applies
    assert decode_image(raw, "image/jpeg", reduce_to=250).size == (300, 500)
    assert decode_image(raw, "image/jpeg", reduce_to=100).size == (150, 250)  # 1/4
    assert decode_image(raw, "image/jpeg", reduce_to=700).size == (600, 1000)  # 1/2 would be too small
    assert decode_image(image_bytes(1000, 600), "image/png", reduce_to=100).size == (1000, 600)  # JPEG only


def test_mime_is_advisory_but_must_be_an_image():
    png = image_bytes(8, 8, fmt="PNG")
    assert decode_image(png, "image/webp").size == (8, 8)  # the bytes decide the format
    assert decode_image(png, "").size == (8, 8)
    with pytest.raises(InvalidInput, match="not an image"):
        decode_image(png, "text/plain")


def test_garbage_empty_and_truncated_payloads_are_invalid_input():
    with pytest.raises(InvalidInput, match="empty"):
        decode_image(b"", "image/png")
    with pytest.raises(InvalidInput, match=r"not a decodable image.*image/png"):
        decode_image(b"definitely not an image", "image/png")
    jpeg = image_bytes(64, 64, fmt="JPEG")
    with pytest.raises(InvalidInput, match="truncated or corrupt"):
        decode_image(jpeg[: len(jpeg) // 2], "image/jpeg")


def test_unsupported_format_names_what_is_accepted():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="BMP")
    with pytest.raises(InvalidInput, match=r"accepted: .*image/jpeg"):
        decode_image(buf.getvalue(), "image/bmp")


def test_payload_size_is_bounded():
    raw = image_bytes(32, 32, fmt="PNG")
    with pytest.raises(InvalidInput, match=f"{len(raw)} bytes; at most 100"):
        decode_image(raw, "image/png", ImageLimits(max_bytes=100))
    pixels = bytes(6 * 9 * 3)  # raw RGB pixels are bounded the same way
    with pytest.raises(InvalidInput, match="162 bytes; at most 100"):
        decode_image(pixels, "application/x.rgb+uint8", ImageLimits(max_bytes=100), meta=_rgb_meta(9, 6))


def test_16_bit_grey_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, "PNG")  # a 16-bit greyscale PNG
    decoded = np.asarray(decode_image(out.getvalue(), "image/png"))
    assert decoded.shape == (8, 64, 3)
    assert decoded[0, 0, 0] == 0 and decoded[0, -1, 0] == 255
    assert abs(float(decoded.mean()) - 127.5) < 3  # Pillow's own convert gives ~254 here


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` but carries almost no pixel data (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_pixel_count_is_checked_before_decoding():
    bomb = _png_header_only(8000, 8000)  # 64 MP declared in a ~60-byte payload
    assert len(bomb) < 100
    with pytest.raises(InvalidInput, match=r"8000x8000 pixels; at most 50000000"):
        decode_image(bomb, "image/png")
    with pytest.raises(InvalidInput, match=r"too large|pixels"):
        decode_image(_png_header_only(100_000, 100_000), "image/png")
    with pytest.raises(InvalidInput, match="per side"):
        decode_image(_png_header_only(30_000, 10), "image/png")


def _rgb_meta(w, h, **extra):
    return {
        "input_format": "rgb_tensor",
        "tensor_width": str(w),
        "tensor_height": str(h),
        "tensor_channels": "3",
        "tensor_dtype": "uint8",
        **extra,
    }


def test_raw_rgb_pixels_as_lumilio_sends_them():
    pixels = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    image = decode_image(
        pixels.tobytes(), "application/x.rgb+uint8", meta=_rgb_meta(9, 6, tensor_layout="HWC")
    )
    assert image.size == (9, 6) and np.array_equal(np.asarray(image), pixels)
    chw = decode_image(pixels.transpose(2, 0, 1).tobytes(), "", meta=_rgb_meta(9, 6, tensor_layout="CHW"))
    assert np.array_equal(np.asarray(chw), pixels)
    bgr = decode_image(
        pixels[:, :, ::-1].tobytes(),
        "application/x.rgb+uint8",
        meta=_rgb_meta(9, 6, tensor_color_space="BGR"),
    )
    assert np.array_equal(np.asarray(bgr), pixels)
    with pytest.raises(InvalidInput, match="raw RGB payload is 10 bytes; 9x6x3 needs 162"):
        decode_image(b"0123456789", "application/x.rgb+uint8", meta=_rgb_meta(9, 6))
    with pytest.raises(InvalidInput, match="needs meta 'tensor_width'"):
        decode_image(pixels.tobytes(), "application/x.rgb+uint8", meta={})
    with pytest.raises(InvalidInput, match="3-channel uint8"):
        decode_image(pixels.tobytes(), "application/x.rgb+uint8", meta=_rgb_meta(9, 6, tensor_dtype="fp32"))


def test_rgb_array_is_the_decoded_oriented_image():
    raw = image_bytes(40, 20, fmt="JPEG", exif_orientation=6)
    array = decode_rgb_array(raw, "image/jpeg")
    assert array.shape == (40, 20, 3) and array.dtype == np.uint8 and array.flags.c_contiguous
    np.testing.assert_array_equal(array, np.asarray(decode_image(raw, "image/jpeg")))
    with pytest.raises(InvalidInput, match="not a decodable image"):
        decode_rgb_array(b"not an image", "image/png")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[1, 2, 3]], "must be a numpy array"),
        (np.zeros((4, 4, 3), np.float32), "must have dtype uint8"),
        (np.zeros((4, 4), np.uint8), r"shape \(height, width, 3\) \(got shape \(4, 4\)\)"),
        (np.zeros((4, 4, 4), np.uint8), r"got shape \(4, 4, 4\)"),
        (np.zeros((0, 4, 3), np.uint8), "is empty"),
    ],
)
def test_array_check_names_what_is_wrong(value, message):
    with pytest.raises(InvalidInput, match=message):
        ensure_rgb_image(value)
