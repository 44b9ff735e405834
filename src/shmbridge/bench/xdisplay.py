"""A private X display for the capture benchmark and tests: Xvfb on a free display, and an xterm on it.

Owns starting and ending those processes; every wait is bounded and every process is ended, then killed if
it lingers. Needs Debian's xvfb and xterm; ``missing_tools`` says what is absent.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

XVFB_TIMEOUT = 20.0


def missing_tools(*tools: str) -> str | None:
    """Why an X display cannot be had here, or ``None``."""
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
        """How many memfd mappings the X server holds (one per attached segment)."""
        return sum(1 for line in Path(f"/proc/{self.pid}/maps").read_text().splitlines() if "/memfd:" in line)


@contextlib.contextmanager
def xvfb(width: int = 1280, height: int = 720, *extra: str) -> Iterator[XServer]:
    """Start ``Xvfb`` at ``width``x``height``x24 on a free display (it says which through ``-displayfd``)."""
    read_end, write_end = os.pipe()
    args = ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp",
            "-noreset", *extra]  # fmt: skip
    process = subprocess.Popen(args, pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        yield XServer(process, f":{_read_display(read_end, process)}")
    finally:
        os.close(read_end)
        end(process)


def _read_display(fd: int, process: subprocess.Popen[bytes]) -> str:
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


def end(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process``, then kill it if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def xterm_showing(
    server: XServer, text_file: Path, *, geometry: str = "60x12+0+0", font_size: int = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """An ``xterm`` at the top left of ``server`` printing ``text_file`` and what is appended to it later,
    black on white in DejaVu Sans Mono."""
    args = ["xterm", "-geometry", geometry, "-fa", "DejaVu Sans Mono", "-fs", str(font_size), "-bg", "white",
            "-fg", "black", "+sb", "-e", "tail", "-n", "+1", "-f", str(text_file)]  # fmt: skip
    process = subprocess.Popen(args, env=server.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        end(process)
