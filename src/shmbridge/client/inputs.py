"""What a caller may hand to ``ocr``, turned into one of three shapes, and the one copy each shape costs.

- ``Pixels``: a uint8 numpy array (H×W, H×W×1, H×W×3, H×W×4, any strides) or a PIL image. Over a session
  it is copied once into a slot (``write_into``); over HTTP its bytes are the request body.
- ``Encoded``: PNG/JPEG/... bytes or a file path. Only the header is read up front (size and format, so a
  slot of the right size can be leased); over a session it is decoded straight into that slot, over HTTP
  the file is sent as it is (smaller than its pixels, and never base64).
- ``FrameRef``: an array living in a slot lent by ``frame()``. It is sent by reference: never copied.

Nothing here does I/O beyond reading a file the caller named; nothing here knows about sockets.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ErrorCode, FrameTooLarge, InvalidRequest, UsageError
from ..models import PixelFormat
from ..wire.media import ALLOWED_FORMATS, MEDIA_TYPES, RAW_MEDIA_TYPE, decoded_mode
from .slots import SlotLease, copy_reordered


@dataclass(frozen=True, slots=True, eq=False)
class Pixels:
    """Pixels in the caller's memory: copied once into a slot, or sent raw over HTTP."""

    array: np.ndarray
    pixel_format: PixelFormat

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape[0], self.array.shape[1], self.pixel_format.channels


@dataclass(frozen=True, slots=True, eq=False)
class Encoded:
    """An encoded image whose header was read: decoded into a slot, or sent as is over HTTP."""

    data: bytes
    source_format: str
    height: int
    width: int
    pixel_format: PixelFormat

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.source_format]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, self.pixel_format.channels


@dataclass(frozen=True, slots=True, eq=False)
class FrameRef:
    """Pixels already in a leased slot (from ``frame()``): the request names them, nothing is copied."""

    array: np.ndarray
    pixel_format: PixelFormat
    lease: SlotLease

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape[0], self.array.shape[1], self.pixel_format.channels


Prepared = Pixels | Encoded | FrameRef
_UINT8 = np.dtype(np.uint8)


class FrameRegistry:
    """The slots a client has lent out through ``frame()``, to recognise their arrays (and crops of them)."""

    def __init__(self) -> None:
        self._leases: dict[int, SlotLease] = {}
        self._by_array: dict[int, SlotLease] = {}  # id of the very array ``frame()`` yielded -> its lease
        #: id of that array -> its ``FrameRef`` in the default format and the shape it was checked with.
        self._refs: dict[int, tuple[FrameRef, tuple[int, ...]]] = {}
        self._lock = threading.Lock()

    def add(self, lease: SlotLease) -> None:
        array = lease.array
        assert array is not None
        try:  # checked once here, so that ``ocr(frame)`` does not check the same array on every call
            checked: tuple[FrameRef, tuple[int, ...]] | None = (FrameRef(array, _array_format(array, None), lease),
                                                                array.shape)  # fmt: skip
        except InvalidRequest:
            checked = None  # ``ocr`` raises it, as for any array it cannot take
        with self._lock:
            self._leases[id(lease)] = lease
            self._by_array[id(array)] = lease
            if checked is not None:
                self._refs[id(array)] = checked

    def remove(self, lease: SlotLease) -> None:
        with self._lock:
            self._leases.pop(id(lease), None)
            for key in [key for key, held in self._by_array.items() if held is lease]:
                del self._by_array[key]  # by value: a released lease's ``array`` is gone already
                self._refs.pop(key, None)

    def ref(self, array: object) -> FrameRef | None:
        """The ``FrameRef`` of the very array ``frame()`` yielded, in its default pixel format, while its shape
        and dtype are those it was checked with (one dict lookup: no lock, no check per call)."""
        found = self._refs.get(id(array))
        if found is None:
            return None
        ref, shape = found
        held = ref.array
        return ref if held is array and held.shape == shape and held.dtype is _UINT8 else None

    def find(self, array: np.ndarray) -> SlotLease | None:
        """The lease whose slot holds ``array``'s first byte, if any. The array ``frame()`` yielded is
        found by identity (``is`` guards against a reused id); a crop or other view by its address."""
        lease = self._by_array.get(id(array))
        if lease is not None and lease.array is array:
            return lease
        start = array.__array_interface__["data"][0]
        with self._lock:
            for lease in self._leases.values():
                base = lease.buffer.__array_interface__["data"][0]
                if base <= start < base + lease.capacity:
                    return lease
        return None

    def __len__(self) -> int:
        return len(self._leases)


def prepare(image: Any, pixel_format: PixelFormat | str | None = None, frames: FrameRegistry | None = None) -> Prepared:
    """Classify ``image`` and check it, before any slot is leased or byte is sent."""
    if isinstance(image, np.ndarray):
        fmt = _array_format(image, pixel_format)
        lease = frames.find(image) if frames is not None and len(frames) else None
        if lease is not None:
            return FrameRef(image, fmt, lease)
        return Pixels(image, fmt)
    if isinstance(image, bytes | bytearray | memoryview):
        _no_format(pixel_format, "bytes")
        return read_header(bytes(image))
    if isinstance(image, str | os.PathLike):
        _no_format(pixel_format, "a file")
        path = Path(image)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidRequest(f"cannot read {path}: {exc.strerror or exc}") from None
        return read_header(data, name=str(path))
    if _is_pil(image):
        _no_format(pixel_format, "a PIL image")
        return Pixels(*_pil_pixels(image))
    raise UsageError(
        f"cannot OCR a {type(image).__name__}: pass a uint8 numpy array, a PIL image, PNG/JPEG bytes, a path, "
        "or a frame from client.frame()"
    )


def _no_format(pixel_format: object, what: str) -> None:
    if pixel_format is not None:
        raise UsageError(f"pixel_format describes raw arrays; {what} says its own format")


def _array_format(image: np.ndarray, pixel_format: PixelFormat | str | None) -> PixelFormat:
    if image.dtype != np.uint8:
        raise InvalidRequest(f"pixels must be uint8, not {image.dtype}", code=ErrorCode.SHAPE_MISMATCH)
    if image.ndim == 2:
        channels = 1
    elif image.ndim == 3 and image.shape[2] in (1, 3, 4):
        channels = image.shape[2]
    else:
        raise InvalidRequest(f"an image is H×W, H×W×3 or H×W×4, not {image.shape}", code=ErrorCode.BAD_DIMENSIONS)
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidRequest(f"empty image of shape {image.shape}", code=ErrorCode.BAD_DIMENSIONS)
    if pixel_format is None:
        return PixelFormat.default_for(channels)
    try:
        fmt = PixelFormat(pixel_format)
    except ValueError:
        raise InvalidRequest(f"unknown pixel format {pixel_format!r}") from None
    if fmt.channels != channels:
        raise InvalidRequest(f"pixel format {fmt.value} has {fmt.channels} channel(s); the array has {channels}",
                             code=ErrorCode.SHAPE_MISMATCH)  # fmt: skip
    return fmt


def _is_pil(image: object) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(image, Image.Image)


def _pil_pixels(image: Any) -> tuple[np.ndarray, PixelFormat]:
    """A PIL image as a numpy array of a mode the service takes (Pillow exports its pixels once)."""
    target, fmt = decoded_mode(image.mode, image.info)  # the way the service decodes the same file
    if image.mode.startswith("I;16"):
        return (np.asarray(image).astype(np.uint16, copy=False) >> 8).astype(np.uint8), fmt
    if image.mode != target:
        image = image.convert(target)
    return np.asarray(image), fmt


def _open(data: bytes) -> Any:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the service's limits decide
            return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise FrameTooLarge(f"image too large: {exc}") from None
    except Image.UnidentifiedImageError:
        raise InvalidRequest(f"not a {', '.join(ALLOWED_FORMATS)} image (or a damaged one)") from None
    except Exception as exc:  # Pillow raises many types on bad input
        raise InvalidRequest(f"cannot read the image: {exc}") from None


def read_header(data: bytes, *, name: str = "the image") -> Encoded:
    """Size, format and pixel format from the header only: nothing is decoded yet."""
    if not data:
        raise InvalidRequest(f"{name} is empty", code=ErrorCode.BAD_DIMENSIONS)
    with _open(data) as image:
        width, height = image.size
        _, fmt = decoded_mode(image.mode, image.info)
        source = image.format or ""
    if source not in MEDIA_TYPES:
        raise InvalidRequest(f"{name} is a {source or 'unknown'} image; supported: {', '.join(ALLOWED_FORMATS)}")
    return Encoded(data, source, height, width, fmt)


def write_into(prepared: Pixels | Encoded, out: np.ndarray, target: PixelFormat | None = None) -> PixelFormat:
    """The one copy: pixels into ``out`` (a slot view of exactly their shape), or the file decoded into it.

    ``target`` is a channel order the engine prefers (same channel count): the copy writes that order, so
    the service converts nothing. Returns the order actually written.
    """
    target = target or prepared.pixel_format
    if isinstance(prepared, Pixels):
        copy_reordered(prepared.array, out, prepared.pixel_format, target)
        return target
    with _open(prepared.data) as image:
        try:
            pixels, _ = _pil_pixels(image)
        except Exception as exc:
            raise InvalidRequest(f"cannot decode the {prepared.source_format} image: {exc}") from None
        copy_reordered(pixels, out, prepared.pixel_format, target)
    return target


def http_body(prepared: Prepared) -> tuple[bytes, str, dict[str, str]]:
    """Body, content type and shape parameters for ``POST /api/v1/ocr``: raw pixels or the file itself."""
    if isinstance(prepared, Encoded):
        return prepared.data, prepared.media_type, {}
    height, width, channels = prepared.shape
    params = {
        "height": str(height),
        "width": str(width),
        "channels": str(channels),
        "pixel_format": prepared.pixel_format.value,
        "dtype": "uint8",
    }
    return prepared.array.tobytes(), RAW_MEDIA_TYPE, params  # row-major, packed: one copy, whatever the strides
