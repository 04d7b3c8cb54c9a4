"""Lines rendered with Pillow in several fonts and sizes, dark-on-light and light-on-dark, read
back by the real PP-OCRv4 models: character accuracy ≥ 95% overall (printed), and every line's
ink lies in its boxes (≥ 98% of its pixels), boxes that hug the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.ocr.textcompare import errors

FONT_DIR = Path("/usr/share/fonts/truetype")
FONTS = {
    "DejaVu Sans": FONT_DIR / "dejavu" / "DejaVuSans.ttf",
    "DejaVu Sans Bold": FONT_DIR / "dejavu" / "DejaVuSans-Bold.ttf",
    "DejaVu Serif": FONT_DIR / "dejavu" / "DejaVuSerif.ttf",
    "DejaVu Sans Mono": FONT_DIR / "dejavu" / "DejaVuSansMono.ttf",
    "WenQuanYi Micro Hei": FONT_DIR / "wqy" / "wqy-microhei.ttc",
}
LATIN = ["Meeting at 10:30 in room 214", "Total due: $1,284.50", "Fresh bread and coffee daily"]
CHINESE = ["今天天气很好", "北京市海淀区中关村大街", "营业时间 早上九点到晚上八点"]
DARK_ON_LIGHT = ((246, 244, 238), (24, 24, 24))
LIGHT_ON_DARK = ((28, 32, 44), (238, 238, 230))


def _require_font(name: str) -> None:
    path = FONTS[name]
    if not path.is_file():
        pytest.skip(
            f"font {name!r} missing ({path}); install Debian fonts-dejavu-core and fonts-wqy-microhei"
        )


def render(
    lines: list[str], font_path: Path, size: int
) -> tuple[np.ndarray, list[tuple[str, tuple[int, ...]]]]:
    """One image: the lines dark-on-light in the top band, again light-on-dark in the bottom
    band. Returns the image and ``(text, ink)`` of every drawn line, ``ink`` being the mask of
    the pixels the line really covers."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), size)
    pitch = int(size * 1.9)
    band = len(lines) * pitch + size
    width = max(int(font.getbbox(line)[2]) for line in lines) + 2 * size
    image = Image.new("RGB", (width, 2 * band))
    draw = ImageDraw.Draw(image)
    drawn = []
    for b, (background, ink) in enumerate((DARK_ON_LIGHT, LIGHT_ON_DARK)):
        draw.rectangle((0, b * band, width, (b + 1) * band), fill=background)
        for i, line in enumerate(lines):
            xy = (size, b * band + size // 2 + i * pitch)
            draw.text(xy, line, font=font, fill=ink)
            mask = Image.new("L", image.size)
            ImageDraw.Draw(mask).text(xy, line, font=font, fill=255)
            drawn.append((line, np.asarray(mask) > 64))
    return np.asarray(image), drawn


CASES = [  # font, px, lines
    ("DejaVu Sans", 18, LATIN),
    ("DejaVu Sans Bold", 36, LATIN),
    ("DejaVu Serif", 24, LATIN),
    ("DejaVu Sans Mono", 22, LATIN),
    ("WenQuanYi Micro Hei", 28, LATIN),
    ("WenQuanYi Micro Hei", 20, CHINESE),
    ("WenQuanYi Micro Hei", 40, CHINESE),
]


MIN_COVERAGE = 0.98  # of the line's ink pixels inside its box (anti-aliased fringes may poke out)


def _coverage(boxes, ink: np.ndarray) -> float:
    """The share of ``ink`` pixels inside the union of ``boxes``."""
    import cv2

    inside = np.zeros(ink.shape, np.uint8)
    cv2.fillPoly(inside, [np.asarray(box, np.int32) for box in boxes], 1)
    return float((inside.astype(bool) & ink).sum() / ink.sum())


def _hull(box) -> tuple[int, int, int, int]:
    xs, ys = [p[0] for p in box], [p[1] for p in box]
    return min(xs), min(ys), max(xs), max(ys)


def test_rendered_lines_read_back(ocr_pipeline, capsys):
    total_edits = total_chars = spaced_edits = spaced_chars = 0
    report = []
    for font_name, size, lines in CASES:
        _require_font(font_name)
        image, drawn = render(lines, FONTS[font_name], size)
        items = ocr_pipeline.read(image).items
        used: set[int] = set()
        case_edits = case_chars = 0
        for text, ink in drawn:
            ys, _ = np.nonzero(ink)
            top, bottom = int(ys.min()), int(ys.max())
            # the boxes on this line (a wide gap may split a line into several boxes), each
            # hugging it rather than spanning several lines
            mine = [
                k
                for k, item in enumerate(items)
                if top <= np.mean([y for _, y in item.box]) <= bottom
                and _hull(item.box)[3] - _hull(item.box)[1] < 2.0 * (bottom - top + 1)
            ]
            assert mine, f"{font_name} {size}px: no box on {text!r}"
            assert _coverage([items[k].box for k in mine], ink) >= MIN_COVERAGE, (font_name, size, text)
            used.update(mine)
            got = " ".join(items[k].text for k in sorted(mine, key=lambda k: _hull(items[k].box)[0]))
            edits, chars = errors(text, got)
            case_edits += edits
            case_chars += chars
            spaced = errors(text, got, keep_spaces=True)
            spaced_edits += spaced[0]
            spaced_chars += spaced[1]
        assert used == set(range(len(items))), [i.text for k, i in enumerate(items) if k not in used]
        total_edits += case_edits
        total_chars += case_chars
        report.append(f"  {font_name:20s} {size:2d}px  {1 - case_edits / case_chars:6.1%}")
    accuracy = 1 - total_edits / total_chars
    with capsys.disabled():
        print(
            f"\nOCR on rendered lines: character accuracy {accuracy:.2%} over {total_chars} characters "
            f"(ignoring spaces; counting spaces: {1 - spaced_edits / spaced_chars:.2%})"
        )
        print("\n".join(report))
    assert accuracy >= 0.95
