"""``Screen``: one X display, and the slots its server may write into.

Owns: the X connection (xcffib), the root window's geometry, whether MIT-SHM with fd passing works here
(and why not), the segments attached to the server (one ``shmseg`` per segment, attached on first use
and detached when its segment is gone or the screen closes), and ``Capture``, what a grab returns.

Must never: lease or give back slots (the client does), or copy pixels on the shared-memory path: there
the X server writes the screen into the slot's pages and nobody else touches them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..environment import CAPTURE_COPY_VARIABLE
from ..errors import CaptureUnavailable, InvalidRequest
from ..memory import Segment
from ..models import PixelFormat, Roi
from ..wire import roi_from_wire
from . import xcb

#: Set to ``1`` to force the copying capture (for tests, or a server whose MIT-SHM misbehaves).
FORCE_COPY_ENV = CAPTURE_COPY_VARIABLE

CaptureMethod = Literal["shared_memory", "capture_copy"]


@dataclass(frozen=True, eq=False)
class Capture:
    """A screen image ready for ``client.ocr(capture)``.

    ``array`` is H×W×4 in BGRA order as the X server writes it (for a 24-bit screen the fourth byte is
    the server's padding; no engine reads it as alpha). With a session it is a view of a leased slot and
    travels by reference; ``method`` says whether the X server wrote it there itself (``shared_memory``)
    or the pixels were copied through the X socket (``capture_copy``), and ``warnings`` say why.
    """

    array: np.ndarray = field(repr=False)
    region: Roi
    method: CaptureMethod
    pixel_format: PixelFormat = PixelFormat.BGRA
    warnings: tuple[str, ...] = ()
    capture_ms: float = 0.0


class Screen:
    """An X display for captures. Not thread-safe: a client guards it with its own lock."""

    # Defaults let close() run on an object whose __init__ failed half way.
    _connection: Any = None
    _attached: dict[int, tuple[Segment, int]]

    def __init__(self, display: str | None = None) -> None:
        self._attached = {}
        self._lock = threading.Lock()
        self.display = display or os.environ.get("DISPLAY") or ""
        if not self.display:
            raise CaptureUnavailable("no X display to capture: pass display=':0' or set DISPLAY")
        try:
            import xcffib
            import xcffib.shm
        except ImportError:
            raise CaptureUnavailable("screen capture needs xcffib: pip install 'shmbridge[capture]'") from None
        try:
            self._connection = xcffib.connect(display=self.display)
        except xcffib.ConnectionException as exc:
            raise CaptureUnavailable(f"cannot connect to X display {self.display!r}: {exc}") from None
        setup = self._connection.get_setup()
        root = setup.roots[self._connection.pref_screen]
        self.root = int(root.root)
        self.width = int(root.width_in_pixels)
        self.height = int(root.height_in_pixels)
        self.depth = int(root.root_depth)
        bits = {int(f.depth): int(f.bits_per_pixel) for f in setup.pixmap_formats}.get(self.depth)
        if bits != 32:
            self.close()
            raise CaptureUnavailable(
                f"display {self.display} is {self.depth}-bit with {bits} bits per pixel; only screens stored "
                "in 32 bits per pixel (depth 24 or 32) can be captured"
            )
        self._shm: Any = None
        self.shared_memory_reason = self._probe_shared_memory(xcffib)

    def _probe_shared_memory(self, xcffib: Any) -> str | None:
        """``None`` if the server can write into our memfds, else why not (for the copying capture's warning)."""
        if os.environ.get(FORCE_COPY_ENV, "") not in ("", "0"):
            return f"{FORCE_COPY_ENV} is set"
        if not self._connection.core.QueryExtension(len(b"MIT-SHM"), b"MIT-SHM").reply().present:
            return f"display {self.display} has no MIT-SHM extension (a remote or restricted display?)"
        shm = self._connection(xcffib.shm.key)
        version = shm.QueryVersion().reply()
        if (version.major_version, version.minor_version) < (1, 2):
            return (f"display {self.display} has MIT-SHM {version.major_version}.{version.minor_version}; "
                    "passing a memfd needs 1.2")  # fmt: skip
        self._shm = shm
        return None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the root window."""
        return self.width, self.height

    def region(self, region: Roi | tuple[int, int, int, int] | None) -> Roi:
        """The rectangle to capture: the whole screen by default; ``InvalidRequest`` if it leaves it."""
        if region is None:
            return Roi(x=0, y=0, width=self.width, height=self.height)
        roi = roi_from_wire(region)
        if roi.x + roi.width > self.width or roi.y + roi.height > self.height:
            raise InvalidRequest(f"region {roi.width}x{roi.height} at ({roi.x}, {roi.y}) leaves the "
                                 f"{self.width}x{self.height} screen")  # fmt: skip
        return roi

    def grab(self, out: np.ndarray, region: Roi, segment: Segment | None = None, offset: int = 0) -> Capture:
        """Capture ``region`` into ``out`` (H×W×4 uint8, C-contiguous).

        With ``segment`` (the slot's segment, ``out`` starting ``offset`` bytes into it) and MIT-SHM 1.2,
        the X server writes the pixels into the segment itself. Otherwise they are copied through the X
        socket, and the capture says so."""
        if out.shape != (region.height, region.width, 4) or not out.flags.c_contiguous:
            raise InvalidRequest(f"a capture of {region.width}x{region.height} needs a contiguous "
                                 f"{region.height}x{region.width}x4 array, not {out.shape}")  # fmt: skip
        with self._lock:
            return self._grab(out, region, segment, offset)

    def _grab(self, out: np.ndarray, region: Roi, segment: Segment | None, offset: int) -> Capture:
        started = time.perf_counter()
        reason = self.shared_memory_reason
        if reason is None and segment is None:
            reason = "no shared-memory session, so there is no slot for the X server to write into"
        if reason is None:
            assert segment is not None
            try:
                self._grab_shared(out, region, segment, offset)
            except CaptureUnavailable as exc:
                reason = exc.message
            else:
                return Capture(out, region, "shared_memory", capture_ms=_ms_since(started))
        xcb.get_image_into(self._connection, self.root, region.x, region.y, region.width, region.height, out)
        warning = f"capture_copy: the screen was copied through the X socket ({reason})"
        return Capture(out, region, "capture_copy", warnings=(warning,), capture_ms=_ms_since(started))

    def _grab_shared(self, out: np.ndarray, region: Roi, segment: Segment, offset: int) -> None:
        import xcffib.xproto

        shmseg = self._shmseg_for(segment)
        self._shm.GetImage(self.root, region.x, region.y, region.width, region.height, xcb.ALL_PLANES,
                           xcffib.xproto.ImageFormat.ZPixmap, shmseg, offset).reply()  # fmt: skip

    def _shmseg_for(self, segment: Segment) -> int:
        """The server's id for ``segment``, attaching it on first use; segments since closed are detached."""
        self.forget_closed()
        known = self._attached.get(id(segment))
        if known is not None and known[0] is segment:
            return known[1]
        if segment.fd < 0:
            raise CaptureUnavailable("the slot's segment is closed")
        shmseg = self._connection.generate_id()
        xcb.attach_fd(self._connection, shmseg, segment.fd)
        self._attached[id(segment)] = (segment, shmseg)
        return shmseg

    def forget_closed(self) -> None:
        """Detach every segment that its session has closed since it was attached."""
        for key, (segment, shmseg) in list(self._attached.items()):
            if segment.closed or segment.fd < 0:
                self._detach(key, shmseg)

    @property
    def attached_segments(self) -> int:
        return len(self._attached)

    def _detach(self, key: int, shmseg: int) -> None:
        del self._attached[key]
        if self._shm is not None:
            self._shm.Detach(shmseg)
            self._connection.flush()

    def close(self) -> None:
        """Detach every segment and close the connection (the server frees what it held for it)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            for key, (_segment, shmseg) in list(self._attached.items()):
                self._attached.pop(key)
                if self._shm is not None:
                    self._shm.Detach(shmseg)
            connection.flush()
        finally:
            connection.disconnect()

    def __enter__(self) -> Screen:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1e3


def grab_into_slot(screen: Screen, array: np.ndarray, region: Roi, segment: Segment | None) -> Capture:
    """Capture ``region`` into ``array``: a frame leased from ``segment``, or a plain array without one."""
    offset = 0
    if segment is not None:
        offset = array.__array_interface__["data"][0] - segment.slot_buffer(0).__array_interface__["data"][0]
    return screen.grab(array, region, segment, offset)


class Screens:
    """The displays one client captures from: each opened on first use, all closed with the client."""

    def __init__(self) -> None:
        self._screens: dict[str, Screen] = {}
        self._lock = threading.Lock()

    def get(self, display: str | None = None) -> Screen:
        key = display or os.environ.get("DISPLAY") or ""
        with self._lock:
            screen = self._screens.get(key)
            if screen is None:
                screen = self._screens[key] = Screen(key or None)
            return screen

    def close(self) -> None:
        with self._lock:
            screens, self._screens = list(self._screens.values()), {}
        for screen in screens:
            screen.close()
