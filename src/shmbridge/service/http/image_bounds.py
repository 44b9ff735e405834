"""Cheap checks on an encoded image's structure, made on its bytes before Pillow parses it.

A TIFF is a chain of image file directories (IFDs), one per frame. Pillow reads only the first one when
it opens a file, but a file of 100k chained IFDs is a way to make any code that walks them (Pillow's
``n_frames``, ``seek``) burn CPU for as long as the chain is long. A multi-page scan has a handful of
pages, so a chain longer than ``MAX_FRAMES`` is refused with 413 here, after at most ``MAX_FRAMES`` hops
of a few bytes each, never parsing a directory's entries.

This module must never decode pixels or import Pillow.
"""

from __future__ import annotations

import struct

from ...errors import FrameTooLarge

#: Frames (IFDs) an image may chain; only the first is ever read.
MAX_FRAMES = 64

_CLASSIC = {b"II*\x00": "<", b"MM\x00*": ">"}
_BIG = {b"II+\x00": "<", b"MM\x00+": ">"}


def check_frame_chain(data: bytes | bytearray | memoryview) -> None:
    """Raise ``FrameTooLarge`` if ``data`` is a TIFF chaining more than ``MAX_FRAMES`` IFDs. Any other
    format passes, and so does a chain that loops or points outside the file: Pillow, which reads only
    the first directory, decides about those."""
    head = bytes(data[:4])
    if head in _CLASSIC:
        order = _CLASSIC[head]
        count_fmt, entry_size, offset_fmt, first_at = "H", 12, "I", 4
    elif head in _BIG:
        order = _BIG[head]
        count_fmt, entry_size, offset_fmt, first_at = "Q", 20, "Q", 8
    else:
        return
    count_struct = struct.Struct(order + count_fmt)
    offset_struct = struct.Struct(order + offset_fmt)
    size = len(data)
    if first_at + offset_struct.size > size:
        return
    (offset,) = offset_struct.unpack_from(data, first_at)
    seen: set[int] = set()
    while offset:
        if len(seen) >= MAX_FRAMES:
            raise FrameTooLarge(f"the TIFF chains more than {MAX_FRAMES} frames; send its first page alone")
        if offset in seen or offset + count_struct.size > size:
            return
        seen.add(offset)
        (entries,) = count_struct.unpack_from(data, offset)
        next_at = offset + count_struct.size + entries * entry_size
        if next_at + offset_struct.size > size:
            return
        (offset,) = offset_struct.unpack_from(data, next_at)
