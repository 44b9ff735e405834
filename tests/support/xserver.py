"""A real Xvfb for tests, real X programs on it, and an independent reading of its screen (``xwd``).

Every process started here is ended, and every wait is bounded. Tests that need this skip with the reason
when Debian's xvfb / xterm / x11-apps are not installed (``make test`` installs them where it may).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

XVFB_TIMEOUT = 20.0


def missing_tools(*tools: str) -> str | None:
    """Why X tests cannot run here, or ``None``."""
    absent = [tool for tool in ("Xvfb", *tools) if shutil.which(tool) is None]
    if absent:
        return f"{', '.join(absent)} not installed (Debian: apt-get install xvfb xterm x11-apps)"
    return None


@dataclass
class XServer:
    process: subprocess.Popen[bytes]
    display: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def memfd_mappings(self) -> int:
        """How many memfd mappings the X server holds (one per attached segment, plus its own)."""
        return sum(1 for line in Path(f"/proc/{self.pid}/maps").read_text().splitlines() if "/memfd:" in line)


@contextlib.contextmanager
def xvfb(width: int = 1280, height: int = 720, *extra: str) -> Iterator[XServer]:
    """Start ``Xvfb`` on a free display (it picks one and tells us through ``-displayfd``)."""
    read_end, write_end = os.pipe()
    args = ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
            "-noreset", *extra]  # fmt: skip
    process = subprocess.Popen(args, pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        number = _read_display(read_end, process)
        yield XServer(process, f":{number}")
    finally:
        os.close(read_end)
        _end(process)


def _read_display(fd: int, process: subprocess.Popen[bytes]) -> str:
    import select

    deadline = time.monotonic() + XVFB_TIMEOUT
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or process.poll() is not None:
            raise RuntimeError(f"Xvfb did not start (exit status {process.poll()})")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                raise RuntimeError("Xvfb closed its -displayfd pipe without a display number")
            data += chunk
    return data.decode().strip()


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def xterm_showing(
    server: XServer, text_file: Path, *, geometry: str = "60x12+0+0"
) -> Iterator[subprocess.Popen[bytes]]:
    """An ``xterm`` at the top left of ``server`` that prints ``text_file`` (and what is appended to it later)
    in a large font, black on white."""
    args = ["xterm", "-geometry", geometry, "-fa", "DejaVu Sans Mono", "-fs", "20", "-bg", "white", "-fg", "black",
            "+sb", "-e", "tail", "-n", "+1", "-f", str(text_file)]  # fmt: skip
    process = subprocess.Popen(args, env=server.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        _end(process)


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
