"""Turn an engine's raw detections into ordered ``TextLine`` objects.

Engines report quadrilaterals in their own order; users read top to bottom, left to right. Lines whose
vertical centres lie within half a line height of each other are one visual row and are ordered by x.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from ..models import Box, OcrOptions, TextLine

Quad = Sequence[Sequence[float]]

#: The options model's default, which engines other than Vision treat as "keep every line".
DEFAULT_MIN_TEXT_HEIGHT: float = OcrOptions.model_fields["minimum_text_height"].default


def quad_to_box(quad: Quad) -> Box:
    """The axis-aligned bounding box of four corner points."""
    xs = [float(p[0]) for p in quad]
    ys = [float(p[1]) for p in quad]
    return Box(x=min(xs), y=min(ys), width=max(xs) - min(xs), height=max(ys) - min(ys))


def make_line(text: str, confidence: float, quad: Quad, dx: float = 0.0, dy: float = 0.0) -> TextLine:
    """A line from a quad, shifted by (dx, dy) into frame coordinates."""
    shifted = tuple((float(p[0]) + dx, float(p[1]) + dy) for p in quad)
    return TextLine(text=text, confidence=float(confidence), box=quad_to_box(shifted), quad=shifted)


def reading_order(lines: Iterable[TextLine]) -> list[TextLine]:
    """Sort lines top-to-bottom, then left-to-right within a visual row."""
    pending = sorted(lines, key=lambda line: line.box.y + line.box.height / 2)
    rows: list[list[TextLine]] = []
    for line in pending:
        centre = line.box.y + line.box.height / 2
        if rows:
            last = rows[-1]
            ref = last[0]
            ref_centre = ref.box.y + ref.box.height / 2
            if abs(centre - ref_centre) <= max(4.0, 0.5 * min(ref.box.height, line.box.height)):
                last.append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda item: item.box.x)]


def shift_lines(lines: Iterable[TextLine], dx: float, dy: float) -> list[TextLine]:
    """Move lines found in a cropped view back into full-frame coordinates."""
    if dx == 0 and dy == 0:
        return list(lines)
    return [make_line(line.text, line.confidence, line.quad, dx, dy) for line in lines]


def drop_short_lines(lines: list[TextLine], minimum_text_height: float, image_height: int) -> list[TextLine]:
    """Honour ``minimum_text_height`` by dropping lines shorter than that fraction of the image height.

    The default (1/32) is Apple Vision's speed hint, and on a 1080p screen it would drop every line of
    12-16 px UI text, which Vision itself still reads. So the default and anything below it keep every
    line (this engine reads small text anyway), and only a larger minimum filters. A line's height is
    the mean length of its quad's left and right edges (its ink height once boxes are fitted).
    """
    if minimum_text_height <= DEFAULT_MIN_TEXT_HEIGHT:
        return lines
    limit = minimum_text_height * image_height
    return [line for line in lines if _quad_height(line.quad) >= limit]


def is_drawn_shape(text: str) -> bool:
    """True when ``text`` is only block elements and geometric shapes (U+2580-U+25FF, such as a
    terminal's block cursor read as ``■``): a drawn shape, not text, once whitespace is set aside."""
    glyphs = [char for char in text if not char.isspace()]
    return bool(glyphs) and all("\u2580" <= char <= "\u25ff" for char in glyphs)


def _quad_height(quad: Sequence[Sequence[float]]) -> float:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad[:4]
    return (math.hypot(x3 - x0, y3 - y0) + math.hypot(x2 - x1, y2 - y1)) / 2


def sample_image(channels: int = 3) -> np.ndarray:
    """A small white image with a few black words, for warm-up: a blank image would skip recognition and
    leave the recogniser's model unloaded until the first real request."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (320, 64), 255)
    ImageDraw.Draw(canvas).text((12, 16), "Warm up 0123", fill=0, font=ImageFont.load_default(size=28))
    gray = np.asarray(canvas, dtype=np.uint8)
    return gray if channels == 1 else np.ascontiguousarray(np.repeat(gray[:, :, None], channels, axis=2))
