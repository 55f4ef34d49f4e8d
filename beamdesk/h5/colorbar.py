"""A picture of data: the image at one pixel per value, a colour bar beside it.

The data area is pasted unchanged at the top-left corner (its box is also written in the
PNG's ``BeamDesk:data-box`` text chunk); to its right, after a gap, a vertical bar of the
colour map (maximum at the top) with the minimum and maximum written beside it.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

GAP = 8  # between the image and the bar
BAR_WIDTH = 16
TICK = 3
MIN_HEIGHT = 80  # a bar shorter than this has no room for two labels
FONT_SIZE = 11
BACKGROUND = (255, 255, 255, 255)
INK = (0, 0, 0, 255)


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (OSError, TypeError):  # Pillow without FreeType: its bitmap font
        return ImageFont.load_default()


def label(value: float) -> str:
    return f"{value:.4g}"


def bar_colours(cmap: Any, height: int) -> np.ndarray:
    """(height, 4) RGBA bytes of the bar, from the top (1.0) to the bottom (0.0)."""
    return np.asarray(cmap(np.linspace(1.0, 0.0, height), bytes=True))


def compose(rgba: np.ndarray, cmap: Any, low: float, high: float) -> Any:
    """The image (H×W×4 bytes) with a colour bar labelled ``low`` … ``high``, as a PIL image."""
    from PIL import Image, ImageDraw

    rows, cols = rgba.shape[:2]
    font = _font()
    texts = [label(high), label(low)]
    boxes = [font.getbbox(t) for t in texts]
    text_width = max(b[2] - b[0] for b in boxes)
    text_height = max(b[3] for b in boxes)
    height = max(rows, MIN_HEIGHT)
    bar_left = cols + GAP
    width = bar_left + BAR_WIDTH + TICK + 2 + text_width + 2
    canvas = Image.new("RGBA", (width, height), BACKGROUND)
    canvas.paste(Image.fromarray(np.ascontiguousarray(rgba), "RGBA"), (0, 0))
    bar = np.repeat(bar_colours(cmap, height)[:, None, :], BAR_WIDTH, axis=1)
    canvas.paste(Image.fromarray(np.ascontiguousarray(bar), "RGBA"), (bar_left, 0))
    draw = ImageDraw.Draw(canvas)
    right = bar_left + BAR_WIDTH
    for y in (0, height - 1):
        draw.line([(right, y), (right + TICK - 1, y)], fill=INK)
    draw.text((right + TICK + 2, 0), texts[0], fill=INK, font=font)
    draw.text((right + TICK + 2, height - text_height - 1), texts[1], fill=INK, font=font)
    return canvas


def png_bytes(image: Any, text: dict[str, str]) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()
