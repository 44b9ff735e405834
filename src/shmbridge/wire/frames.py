"""The frame layout of protocol version 1: the 20-byte header, the OCR_REQUEST struct and every code on the wire.

Owns the numbers both sides must agree on byte for byte (``docs/protocol.md``, section 2): the magic, the
version, the two precompiled ``struct.Struct`` s, the frame type, dtype and pixel format codes and the
``HAS_FD`` flag. It must never change one of them within version 1, and never do I/O.

Every frame is a 20-byte little-endian header followed by ``length`` body bytes::

    0      4        5         6      8            16         20
    ├magic─┼version─┼type─────┼flags─┼request_id──┼length────┼ body ...
    "SHMB"   u8 = 1   u8        u16    u64          u32
"""

from __future__ import annotations

import enum
import struct

from ..models import PixelFormat

__all__ = [
    "DEFAULT_MAX_BODY", "FLAG_HAS_FD", "FRAME_TYPES", "HEADER", "HEADER_SIZE", "MAGIC", "OCR_FRAME", "OCR_STRUCT",
    "PIXEL_FORMATS", "PIXEL_FORMAT_CODES", "SUPPORTED_VERSIONS", "VERSION", "DType", "FrameType",
]  # fmt: skip

MAGIC = b"SHMB"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
HEADER = struct.Struct("<4sBBHQI")
HEADER_SIZE = HEADER.size  # 20
DEFAULT_MAX_BODY = 1 << 20

#: OCR_REQUEST fixed part: segment, slot, offset, height, width, channels, dtype, pixel format,
#: reserved, row pitch, roi x, y, width, height (roi width 0 = whole image).
OCR_STRUCT = struct.Struct("<IIQIIBBBBQIIII")
#: A whole OCR_REQUEST frame without options, header and struct in one (the hot path packs and unpacks once).
OCR_FRAME = struct.Struct(HEADER.format + OCR_STRUCT.format.lstrip("<"))

FLAG_HAS_FD = 0x0001  # exactly one file descriptor travels with this frame (SCM_RIGHTS)


class FrameType(enum.IntEnum):
    HELLO = 1
    WELCOME = 2
    ALLOC = 3
    SEGMENT = 4
    OCR_REQUEST = 5
    RESULT = 6
    ERROR = 7
    BYE = 8


class DType(enum.IntEnum):
    UINT8 = 1


#: Pixel format codes on the wire. Members are ``str`` s too ("gray", "rgb", ...), so either spelling looks up.
PIXEL_FORMATS: dict[int, PixelFormat] = {0: PixelFormat.GRAY, 1: PixelFormat.RGB, 2: PixelFormat.BGR,
                                         3: PixelFormat.RGBA, 4: PixelFormat.BGRA}  # fmt: skip
PIXEL_FORMAT_CODES: dict[str, int] = {name: code for code, name in PIXEL_FORMATS.items()}
FRAME_TYPES: dict[int, FrameType] = {int(t): t for t in FrameType}  # a dict lookup, not an enum call
