"""``draw(image, result)``: a picture of what was read, each line's box, text and confidence on the image.

Owns only the rendering, with Pillow: a tinted box (the quad the engine gave) with a solid outline, and
above it a label ``text  0.97`` on the box's colour. The input is never changed; a new RGB image is
returned. It must never run OCR or talk to a service (``shmbridge ocr --draw`` and the HTTP endpoint do).
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .models import OcrResult, TextLine

#: Box colours, one per line in turn (a colour-blind-safe palette: Okabe and Ito).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
)
TINT_ALPHA = 56  # of 255: the box's inside stays readable


def _as_image(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")  # always a new image
    if isinstance(image, bytes | bytearray | memoryview):
        return Image.open(io.BytesIO(bytes(image))).convert("RGB")
    if isinstance(image, str | os.PathLike):
        with Image.open(image) as opened:
            return opened.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    raise TypeError(f"draw takes a PIL image, a path, encoded bytes or a numpy array, not {type(image).__name__}")


def _corners(line: TextLine) -> list[tuple[float, float]]:
    if len(line.quad) >= 3:
        return [(float(x), float(y)) for x, y in line.quad]
    box = line.box
    return [(box.x, box.y), (box.x + box.width, box.y), (box.x + box.width, box.y + box.height),
            (box.x, box.y + box.height)]  # fmt: skip


def draw(image: Any, result: OcrResult, *, outline: int | None = None) -> Image.Image:
    """``image`` (PIL image, path, PNG/JPEG bytes or an RGB array) with ``result``'s lines drawn on it.

    ``outline`` is the box border in pixels (default: about 1/400 of the image's longer side, at least 2).
    """
    picture = _as_image(image)
    width = outline or max(2, round(max(picture.size) / 400))
    tint = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    tint_pen = ImageDraw.Draw(tint)
    for index, line in enumerate(result.lines):
        colour = PALETTE[index % len(PALETTE)]
        tint_pen.polygon(_corners(line), fill=(*colour, TINT_ALPHA))
    picture = Image.alpha_composite(picture.convert("RGBA"), tint).convert("RGB")
    pen = ImageDraw.Draw(picture)
    for index, line in enumerate(result.lines):
        colour = PALETTE[index % len(PALETTE)]
        corners = _corners(line)
        pen.line([*corners, corners[0]], fill=colour, width=width, joint="curve")
        _label(pen, line, colour, picture.size)
    return picture


def _label(pen: ImageDraw.ImageDraw, line: TextLine, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    font = ImageFont.load_default(size=max(11, min(28, round(line.box.height * 0.55))))
    text = f"{line.text}  {line.confidence:.2f}"
    left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
    label_w, label_h = right - left + 6, bottom - top + 4
    x = min(max(0.0, line.box.x), max(0.0, size[0] - label_w))
    y = line.box.y - label_h if line.box.y >= label_h else line.box.y + line.box.height
    pen.rectangle((x, y, x + label_w, y + label_h), fill=colour)
    pen.text((x + 3 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)
