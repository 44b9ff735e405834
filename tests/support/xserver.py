"""Real X for tests: the display helpers of ``shmbridge.bench.xdisplay``, and an independent reading of the
screen with ``xwd``. Tests that need them skip with the reason when Debian's xvfb / xterm / x11-apps are
missing (``make test`` installs them where it may)."""

from __future__ import annotations

import struct
import subprocess
import time

import numpy as np

from shmbridge.bench.xdisplay import XServer, missing_tools, xterm_showing, xvfb

__all__ = ["XServer", "missing_tools", "wait_for", "xterm_showing", "xvfb", "xwd_root"]


def xwd_root(server: XServer) -> np.ndarray:
    """The whole screen as H×W×4 (byte order as in memory, BGRX for a 24-bit screen), read by ``xwd``:
    a reading that shares no code with shmbridge's capture."""
    data = subprocess.run(["xwd", "-root", "-silent", "-display", server.display], check=True,
                          capture_output=True, timeout=30).stdout  # fmt: skip
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height = fields[0], fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = fields[7], fields[11], fields[12], fields[19]
    if bits_per_pixel != 32:
        raise RuntimeError(f"xwd wrote {bits_per_pixel} bits per pixel; the test expects 32")
    start = header_size + 12 * ncolors
    rows = np.frombuffer(data, np.uint8, count=height * bytes_per_line, offset=start).reshape(height, bytes_per_line)
    pixels = rows[:, : width * 4].reshape(height, width, 4)
    return pixels if byte_order == 0 else pixels[:, :, ::-1]  # xwd writes the server's byte order


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
