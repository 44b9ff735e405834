"""Bytes from an HTTP body into a pixel array: base64 text, encoded images (Pillow) and raw pixels.

Pure functions, no FastAPI and no event loop: the HTTP routes run them (in a worker thread when they cost
CPU) and hand the array to ``ServiceCore.process``. Rules kept here:

- raw pixels are never re-encoded or copied: ``raw_view`` is a read-only numpy view of the body's buffer;
- an encoded image's size is checked from its header, before a single pixel is decoded, so a small file
  that expands to gigabytes (a decompression bomb) is refused with 413;
- only the formats in ``wire.ALLOWED_FORMATS`` are ever parsed; every other input is a typed 4xx error, so
  nothing a client sends makes this module raise anything but ``ShmBridgeError``;
- only the first frame of a multi-frame image is read, and the frames are never counted; the wall time a
  decode may take is bounded by its caller (``context.DecodeGate``, ``decode_timeout``).

Pillow keeps decoded pixels in its own memory; ``np.asarray`` takes them out with one copy, the only one
on this path (there is no way to decode into a caller's buffer).
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ...errors import ErrorCode, FrameTooLarge, InvalidRequest, ShmBridgeError
from ...models import PixelFormat
from ...wire.media import ALLOWED_FORMATS, SIXTEEN_BIT_MODES, decoded_mode
from .image_bounds import check_frame_chain
from .sniff import header_size

#: Content types of encoded images on ``POST /api/v1/ocr``. Pillow sniffs the real format; the type only
#: says "this is an encoded image".
IMAGE_MEDIA_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/webp",
        "image/bmp",
        "image/x-ms-bmp",
        "image/x-bmp",
        "image/tiff",
        "image/gif",
        "image/*",
    }
)
_MAX_DIM = 1 << 31

#: ``check_size(height, width, channels)``: raises ``FrameTooLarge`` over the service's limits.
SizeCheck = Callable[[int, int, int], None]


@dataclass(slots=True)
class Decoded:
    """A decoded image: H×W(×C) uint8 pixels, their format, and anything the caller should know."""

    image: np.ndarray
    pixel_format: PixelFormat
    source_format: str
    encoded_bytes: int = 0
    warnings: list[str] = field(default_factory=list)


def decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64, with or without padding, line breaks or a ``data:`` URL prefix."""
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise InvalidRequest("a data URL must be base64: data:<type>;base64,<data>")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        compact = "".join(text.split())  # old clients sent base64.encodebytes output, with newlines
        compact = compact.translate(_URLSAFE).rstrip("=")
        compact += "=" * (-len(compact) % 4)
        try:
            data = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("image_data is not valid base64") from None
    if not data:
        raise InvalidRequest("the image is empty", code=ErrorCode.BAD_DIMENSIONS)
    return data


_URLSAFE = str.maketrans("-_", "+/")


def decode_image(data: bytes | bytearray | memoryview, check_size: SizeCheck) -> Decoded:
    """Decode PNG, JPEG, WebP, BMP, TIFF or GIF into gray, RGB or RGBA pixels (first frame only)."""
    if not len(data):
        raise InvalidRequest("the image is empty", code=ErrorCode.BAD_DIMENSIONS)
    check_frame_chain(data)  # a TIFF of 100k chained frames is refused before Pillow sees it
    declared = header_size(data)
    if declared is not None:  # our --max-pixels decides before Pillow's own bomb check can
        check_size(declared[1], declared[0], 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limits decide
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise FrameTooLarge(f"image too large: {exc}") from None
    except Image.UnidentifiedImageError:
        raise InvalidRequest(
            f"cannot decode the image: not a {', '.join(ALLOWED_FORMATS)} file (or a damaged one)"
        ) from None
    except Exception as exc:  # Pillow raises many types on hostile input; all of them are the client's data
        raise InvalidRequest(f"cannot decode the image: {exc}") from None
    try:
        decoded = _pixels(image, check_size)
        decoded.encoded_bytes = len(data)
        return decoded
    except ShmBridgeError:
        raise
    except Exception as exc:
        raise InvalidRequest(f"cannot decode the {image.format} image: {exc}") from None
    finally:
        image.close()


def _pixels(image: Image.Image, check_size: SizeCheck) -> Decoded:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidRequest(f"the image has no pixels ({width}x{height})", code=ErrorCode.BAD_DIMENSIONS)
    mode = image.mode
    target, fmt = decoded_mode(mode, image.info)
    check_size(height, width, fmt.channels)  # before decoding: refuse bombs while they are still small
    notes: list[str] = []
    # Never ``n_frames``: it walks every frame, and a TIFF can chain any number of them (ARCHITECTURE.md,
    # decision 33). ``is_animated`` looks one frame ahead at most.
    if getattr(image, "is_animated", False):
        notes.append(f"the {image.format} image has more than one frame; only the first was read")
    image.load()
    if mode in SIXTEEN_BIT_MODES:
        pixels = (np.asarray(image).astype(np.uint16, copy=False) >> 8).astype(np.uint8)
        notes.append("16-bit samples were reduced to 8 bits")
    else:
        if mode != target:
            image = image.convert(target)
        pixels = np.asarray(image)
    return Decoded(pixels, fmt, image.format or "unknown", warnings=notes)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"HxWxC"`` or ``"HxW"`` (one channel) from the ``X-Shmbridge-Shape`` header."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise InvalidRequest(f"a shape is HxWxC or HxW, not {text!r}", code=ErrorCode.BAD_DIMENSIONS) from None
    if len(numbers) == 2:
        numbers.append(1)
    if len(numbers) != 3:
        raise InvalidRequest(f"a shape is HxWxC or HxW, not {text!r}", code=ErrorCode.BAD_DIMENSIONS)
    height, width, channels = numbers
    return height, width, channels


def raw_view(
    data: bytes | bytearray | memoryview, height: int, width: int, channels: int, pitch: int | None = None
) -> np.ndarray:
    """A read-only H×W(×C) view of raw uint8 pixels in ``data``: no copy, no re-encoding.

    ``data`` holds ``height`` rows of ``pitch`` bytes (the last row may omit its padding); without
    ``pitch`` rows are packed (``width * channels`` bytes).
    """
    for name, value in (("height", height), ("width", width)):
        if not 0 < value < _MAX_DIM:
            raise InvalidRequest(f"{name} {value} must be between 1 and 2**31", code=ErrorCode.BAD_DIMENSIONS)
    if channels not in (1, 3, 4):
        raise InvalidRequest(f"{channels} channels; 1, 3 or 4 expected", code=ErrorCode.BAD_DIMENSIONS)
    row = width * channels
    row_pitch = row if pitch is None else pitch
    if row_pitch < row:
        raise InvalidRequest(f"row pitch {row_pitch} is shorter than a row of {row} bytes",
                             code=ErrorCode.SHAPE_MISMATCH)  # fmt: skip
    size = len(data)
    if size == 0:
        raise InvalidRequest("the body is empty", code=ErrorCode.BAD_DIMENSIONS)
    full, tight = height * row_pitch, (height - 1) * row_pitch + row
    if size not in (full, tight):
        expected = f"{full}" if full == tight else f"{tight} or {full}"
        raise InvalidRequest(
            f"{size} bytes do not hold {height}x{width}x{channels} pixels with row pitch {row_pitch} "
            f"({expected} expected)",
            code=ErrorCode.SHAPE_MISMATCH,
        )
    shape: tuple[int, ...] = (height, width) if channels == 1 else (height, width, channels)
    strides: tuple[int, ...] = (row_pitch, 1) if channels == 1 else (row_pitch, channels, 1)
    view = np.ndarray(shape, dtype=np.uint8, buffer=data, strides=strides)
    view.flags.writeable = False  # engines must never write to what a client sent
    return view
