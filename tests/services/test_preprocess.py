"""Preprocessing against references computed here, independently of the implementation."""

import numpy as np
import pytest
from PIL import Image

from services.clip.config import read_clip_config
from services.clip.preprocess import OPENAI_MEAN, OPENAI_STD, ImagePreprocess
from services.model_info import parse_model_info

MEAN = np.array(OPENAI_MEAN, dtype=np.float32)
STD = np.array(OPENAI_STD, dtype=np.float32)


def _random_image(w: int, h: int, seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB"), pixels


def _normalise(pixels: np.ndarray) -> np.ndarray:
    return ((pixels.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)


def _nearest(pixels: np.ndarray, w: int, h: int) -> np.ndarray:
    src_h, src_w = pixels.shape[:2]
    ys = np.floor((np.arange(h) + 0.5) * src_h / h).astype(int)
    xs = np.floor((np.arange(w) + 0.5) * src_w / w).astype(int)
    return pixels[ys][:, xs]


def test_shortest_resize_then_centre_crop_matches_reference():
    image, pixels = _random_image(60, 40)  # landscape 3:2
    pre = ImagePreprocess(height=20, width=20, resize_mode="shortest", interpolation="nearest")
    # short side 40 -> 20; long side int(20 * 60 / 40) = 30; crop left = round((30 - 20) / 2) = 5
    resized = _nearest(pixels, 30, 20)
    expected = _normalise(resized[:, 5:25])
    got = pre.to_tensor(image)
    assert got.shape == (3, 20, 20) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_shortest_on_portrait_rounds_the_long_side_down_and_crops_rows():
    image, pixels = _random_image(30, 47)
    pre = ImagePreprocess(height=10, width=10, resize_mode="shortest", interpolation="nearest")
    # short 30 -> 10; long int(10 * 47 / 30) = 15; crop top = round(5 / 2) = 2 (banker's: 2.5 -> 2)
    expected = _normalise(_nearest(pixels, 10, 15)[2:12])
    np.testing.assert_allclose(pre.to_tensor(image), expected, atol=1e-6)


def test_squash_keeps_the_whole_image():
    image, pixels = _random_image(60, 40)
    pre = ImagePreprocess(height=20, width=20, resize_mode="squash", interpolation="nearest")
    np.testing.assert_allclose(pre.to_tensor(image), _normalise(_nearest(pixels, 20, 20)), atol=1e-6)


def test_bicubic_shortest_crops_away_the_sides():
    # left third red, middle third green, right third blue: a centre crop of a 3:1 image keeps
    # only green; squash keeps all three
    pixels = np.zeros((40, 120, 3), dtype=np.uint8)
    pixels[:, :40] = (255, 0, 0)
    pixels[:, 40:80] = (0, 255, 0)
    pixels[:, 80:] = (0, 0, 255)
    image = Image.fromarray(pixels, "RGB")
    green = _normalise(np.array([[[0, 255, 0]]], dtype=np.uint8))[:, 0, 0]
    crop = ImagePreprocess(height=20, width=20, resize_mode="shortest", interpolation="bicubic").to_tensor(
        image
    )
    interior = crop[:, :, 3:17]  # away from the crop edges, where bicubic taps reach outside
    np.testing.assert_allclose(interior, np.broadcast_to(green[:, None, None], interior.shape), atol=1e-5)
    squash = ImagePreprocess(height=20, width=20, resize_mode="squash", interpolation="bicubic").to_tensor(
        image
    )
    red = _normalise(np.array([[[255, 0, 0]]], dtype=np.uint8))[:, 0, 0]
    np.testing.assert_allclose(squash[:, 10, 1], red, atol=1e-5)


def test_longest_pads_with_fill():
    image, pixels = _random_image(40, 20)
    got = ImagePreprocess(
        height=20, width=20, resize_mode="longest", interpolation="nearest", fill=0
    ).to_tensor(image)
    expected_rows = _normalise(_nearest(pixels, 20, 10))
    np.testing.assert_allclose(got[:, 5:15], expected_rows, atol=1e-6)
    black = _normalise(np.zeros((1, 1, 3), dtype=np.uint8))[:, 0, 0]
    np.testing.assert_allclose(got[:, 0, 0], black, atol=1e-6)


def test_mean_std_from_open_clip_config(tmp_path):
    (tmp_path / "open_clip_config.json").write_text(
        '{"model_cfg": {"embed_dim": 512, "vision_cfg": {"image_size": 256},'
        ' "text_cfg": {"context_length": 64}}, "preprocess_cfg": {"mean": [0, 0, 0], "std": [1, 1, 1],'
        ' "interpolation": "bilinear", "resize_mode": "squash"}}'
    )
    info = parse_model_info(
        {"name": "m", "runtimes": {"onnx": {"available": True, "files": ["onnx/vision.onnx"]}}}
    )
    config = read_clip_config(tmp_path, info)
    pre = config.preprocess
    assert (pre.height, pre.width, pre.resize_mode, pre.interpolation) == (256, 256, "squash", "bilinear")
    assert config.context_length == 64 and config.embed_dim == 512
    image, pixels = _random_image(256, 256)
    np.testing.assert_allclose(
        pre.to_tensor(image), pixels.astype(np.float32).transpose(2, 0, 1) / 255.0, atol=1e-6
    )


def test_hub_preprocess_block_wins_and_bad_values_are_named(tmp_path):
    info = parse_model_info(
        {
            "name": "siglip",
            "runtimes": {"onnx": {"available": True, "components": ["vision"], "precisions": ["fp32"]}},
            "task_metadata": {
                "tasks": {
                    "semantic_image_embed": {
                        "preprocess": {
                            "crop_size": {"width": 224, "height": 224},
                            "do_center_crop": False,
                            "image_mean": [0.5, 0.5, 0.5],
                            "image_std": [0.5, 0.5, 0.5],
                            "resample": "bilinear",
                        }
                    }
                }
            },
        }
    )
    pre = read_clip_config(tmp_path, info).preprocess
    assert (pre.resize_mode, pre.interpolation, pre.mean) == ("squash", "bilinear", (0.5, 0.5, 0.5))
    (tmp_path / "open_clip_config.json").write_text('{"preprocess_cfg": {"resize_mode": "zoom"}}')
    plain = parse_model_info(
        {"name": "m", "runtimes": {"onnx": {"available": True, "files": ["onnx/vision.onnx"]}}}
    )
    with pytest.raises(ValueError, match=r"resize_mode 'zoom' is not one of shortest, squash, longest"):
        read_clip_config(tmp_path, plain)


def test_an_rgb_image_is_not_copied_to_rgb_first(monkeypatch):
    pre = ImagePreprocess(8, 8, resize_mode="squash")
    rgb = Image.new("RGB", (32, 16), (200, 100, 50))
    grey = rgb.convert("L")
    expected_grey = pre.to_tensor(grey)
    converted: list[str] = []
    original = Image.Image.convert

    def convert(self, mode=None, *args, **kwargs):
        converted.append(f"{self.mode}->{mode}")
        return original(self, mode, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", convert)
    tensor = pre.to_tensor(rgb)
    assert converted == []  # no full-size copy of an image that is RGB already
    assert tensor.shape == (3, 8, 8)
    assert np.allclose(pre.to_tensor(grey), expected_grey) and converted == ["L->RGB"]
