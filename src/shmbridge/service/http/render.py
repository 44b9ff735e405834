"""``?render=png`` on ``POST /api/v1/ocr``: the picture of what was read, instead of the JSON result.

Owns turning a request's pixels (raw, in any pixel format, or the encoded image again) and its result into
a PNG with ``shmbridge.draw``, off the event loop. Must never run OCR itself or change the result: the
request is read exactly as without ``render``, then drawn.
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
from starlette.responses import Response

from ...models import OcrResult, PixelFormat

#: How the result travels beside the picture: the line count and the text, for a client that wants both.
LINES_HEADER = "X-Shmbridge-Lines"


def _as_rgb(image: np.ndarray, pixel_format: PixelFormat) -> np.ndarray:
    if pixel_format is PixelFormat.BGR:
        return image[:, :, ::-1]
    if pixel_format is PixelFormat.BGRA:
        return image[:, :, [2, 1, 0]]
    if pixel_format is PixelFormat.RGBA:
        return image[:, :, :3]
    return image  # gray (H×W) and RGB draw as they are


def _png(source: np.ndarray | bytes, pixel_format: PixelFormat | None, result: OcrResult) -> bytes:
    from ...draw import draw

    picture = draw(_as_rgb(source, pixel_format) if isinstance(source, np.ndarray) else source, result)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=3)  # a quick encode: the picture is for a person
    return out.getvalue()


async def render_png(
    source: np.ndarray | bytes, pixel_format: PixelFormat | None, result: OcrResult, headers: dict[str, str]
) -> Response:
    """The annotated PNG of ``source`` (raw pixels in ``pixel_format``, or the encoded image's bytes)."""
    body = await asyncio.to_thread(_png, source, pixel_format, result)
    return Response(body, media_type="image/png", headers={**headers, LINES_HEADER: str(len(result.lines))})
