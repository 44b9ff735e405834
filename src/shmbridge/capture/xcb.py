"""The few libxcb calls that xcffib cannot make, through ctypes.

Owns: loading ``libxcb`` and ``libxcb-shm``; ``attach_fd`` (MIT-SHM 1.2's ``xcb_shm_attach_fd``, which
xcffib generates but cannot pass an fd to) and ``get_image_into`` (the core ``GetImage`` reply copied
straight into a caller's buffer: xcffib would unpack it into a Python list first, byte by byte).

Must never: keep a pointer into a reply after returning, or own the X connection (``screen.py`` does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from typing import Any

from ..errors import CaptureUnavailable

#: ZPixmap: whole pixels, rows one after another (the only layout the capture reads).
Z_PIXMAP = 2
ALL_PLANES = 0xFFFFFFFF


class _Cookie(ctypes.Structure):
    _fields_ = [("sequence", ctypes.c_uint)]


class _GetImageReply(ctypes.Structure):
    _fields_ = [
        ("response_type", ctypes.c_uint8),
        ("depth", ctypes.c_uint8),
        ("sequence", ctypes.c_uint16),
        ("length", ctypes.c_uint32),
        ("visual", ctypes.c_uint32),
    ]


def _load(name: str, package: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(name)
    if path is None:
        raise CaptureUnavailable(f"lib{name} is not installed: install {package} (Debian: apt-get install {package})")
    return ctypes.CDLL(path)


@functools.cache
def _xcb() -> ctypes.CDLL:
    lib = _load("xcb", "libxcb1")
    lib.xcb_request_check.restype = ctypes.c_void_p
    lib.xcb_request_check.argtypes = [ctypes.c_void_p, _Cookie]
    lib.xcb_get_image.restype = _Cookie
    lib.xcb_get_image.argtypes = [ctypes.c_void_p, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_int16, ctypes.c_int16,
                                  ctypes.c_uint16, ctypes.c_uint16, ctypes.c_uint32]  # fmt: skip
    lib.xcb_get_image_reply.restype = ctypes.POINTER(_GetImageReply)
    lib.xcb_get_image_reply.argtypes = [ctypes.c_void_p, _Cookie, ctypes.POINTER(ctypes.c_void_p)]
    lib.xcb_get_image_data.restype = ctypes.c_void_p
    lib.xcb_get_image_data.argtypes = [ctypes.POINTER(_GetImageReply)]
    lib.xcb_get_image_data_length.restype = ctypes.c_int
    lib.xcb_get_image_data_length.argtypes = [ctypes.POINTER(_GetImageReply)]
    return lib


@functools.cache
def _xcb_shm() -> ctypes.CDLL:
    lib = _load("xcb-shm", "libxcb-shm0")
    lib.xcb_shm_attach_fd_checked.restype = _Cookie
    lib.xcb_shm_attach_fd_checked.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint8]
    return lib


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def connection_pointer(connection: Any) -> int:
    """The ``xcb_connection_t *`` behind an ``xcffib.Connection``, as an address ctypes can pass."""
    import xcffib

    return int(xcffib.ffi.cast("uintptr_t", connection._conn))


def attach_fd(connection: Any, shmseg: int, fd: int) -> None:
    """Attach ``fd`` (a memfd) to the X server as ``shmseg``, writable by the server.

    XCB closes the fd it sends, so the server gets a duplicate and the caller keeps ``fd``. Raises
    ``CaptureUnavailable`` if the server refuses it (no fd passing over this connection, say)."""
    pointer = connection_pointer(connection)
    cookie = _xcb_shm().xcb_shm_attach_fd_checked(pointer, shmseg, os.dup(fd), 0)
    error = _xcb().xcb_request_check(pointer, cookie)
    if error:
        code = ctypes.cast(error, ctypes.POINTER(ctypes.c_uint8))[1]
        _libc().free(error)
        raise CaptureUnavailable(f"the X server refused the shared-memory segment (X error {code})")


def get_image_into(connection: Any, drawable: int, x: int, y: int, width: int, height: int, out: Any) -> int:
    """Core ``GetImage`` (ZPixmap) of a rectangle, its pixel bytes copied into the writable buffer ``out``.

    This is the copying capture: the pixels cross the X socket and are copied once more, into ``out``.
    Returns the depth the server reported."""
    lib = _xcb()
    pointer = connection_pointer(connection)
    cookie = lib.xcb_get_image(pointer, Z_PIXMAP, drawable, x, y, width, height, ALL_PLANES)
    error = ctypes.c_void_p()
    reply = lib.xcb_get_image_reply(pointer, cookie, ctypes.byref(error))
    if not reply:
        if error.value:
            _libc().free(error.value)
        raise CaptureUnavailable(f"the X server could not read the {width}x{height} rectangle at ({x}, {y})")
    try:
        length = lib.xcb_get_image_data_length(reply)
        target = memoryview(out).cast("B")
        if length != target.nbytes:
            raise CaptureUnavailable(
                f"the X server sent {length} bytes for a {width}x{height} image; {target.nbytes} expected "
                "(only 24- and 32-bit screens can be captured)"
            )
        ctypes.memmove((ctypes.c_char * length).from_buffer(target), lib.xcb_get_image_data(reply), length)
        return int(reply.contents.depth)
    finally:
        _libc().free(ctypes.cast(reply, ctypes.c_void_p))
