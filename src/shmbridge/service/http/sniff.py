"""What an encoded image is, from its first bytes: its format (magic numbers) and its size (the header).

Two jobs, both pure functions over bytes:

- ``sniff_format`` names the format when a client sent no content type or a generic one (curl's
  ``--data-binary`` says ``application/x-www-form-urlencoded``), so the bytes decide, not the label;
- ``header_size`` reads width and height from the header, so the service's own pixel limit
  (``--max-pixels``) refuses a decompression bomb before Pillow opens it. Pillow's ``Image.open`` runs its
  own bomb check first, with its own limit and wording; ours must decide, with the same 413 as raw pixels.

It must never decode pixels, allocate in proportion to a declared size, or raise on hostile input: a
header it cannot read is ``None`` and Pillow (with the size check after opening) decides.
"""

from __future__ import annotations

import struct

#: Magic numbers of the formats ``wire.ALLOWED_FORMATS`` parses (WebP is RIFF....WEBP, below).
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); they carry the size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: JPEG markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})

Buffer = bytes | bytearray | memoryview


def sniff_format(data: Buffer) -> str | None:
    """``"PNG"``, ``"JPEG"``, ``"GIF"``, ``"BMP"``, ``"TIFF"`` or ``"WEBP"`` by magic number, else ``None``."""
    head = bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in MAGIC if head.startswith(magic)), None)


def header_size(data: Buffer) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, GIF, BMP, WebP or JPEG; ``None`` when unknown.

    TIFF keeps its size in a directory anywhere in the file; it is left to Pillow and the check after
    opening (Pillow's own check covers it only above its much larger limit).
    """
    reader = _READERS.get(sniff_format(data) or "")
    if reader is None:
        return None
    try:
        size = reader(memoryview(data))
    except (struct.error, IndexError, ValueError):
        return None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return size


def _png(data: memoryview) -> tuple[int, int] | None:
    if bytes(data[12:16]) != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return width, height


def _gif(data: memoryview) -> tuple[int, int]:
    return struct.unpack_from("<HH", data, 6)


def _bmp(data: memoryview) -> tuple[int, int]:
    (header,) = struct.unpack_from("<I", data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack_from("<HH", data, 18)
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(width), abs(height)  # a negative height means rows run top-down


def _webp(data: memoryview) -> tuple[int, int] | None:
    chunk = bytes(data[12:16])
    if chunk == b"VP8X":  # 24-bit width-1 and height-1
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":  # 14-bit width-1 and height-1 after the 0x2F signature
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # key frame: start code, then 14-bit sizes
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


def _jpeg(data: memoryview) -> tuple[int, int] | None:
    position = 2
    while position + 9 <= len(data):  # every step moves forward, so this ends with the data
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, position + 5)
            return width, height
        (length,) = struct.unpack_from(">H", data, position + 2)
        if length < 2:
            return None
        position += 2 + length
    return None


_READERS = {"PNG": _png, "GIF": _gif, "BMP": _bmp, "WEBP": _webp, "JPEG": _jpeg}
