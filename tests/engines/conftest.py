"""Fixtures shared by the engine tests: the real scans, the synthetic screens, and a network guard.

The scans live outside the repository (``../shared/fixtures`` next to the checkout); tests that need
them skip with the path they looked in. The guard makes any attempt to reach a non-loopback address
fail loudly, so "nothing downloads at run time" is checked rather than assumed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shmbridge.bench import synthetic

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
SCANS = FIXTURES / "tesseract-test"


class NetworkBlocked(OSError):
    """Raised when an engine test tries to leave the machine."""


def _loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths and other non-IP addresses stay on the machine
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def offline() -> Iterator[list[str]]:
    """Refuse DNS look-ups and connections to anything but loopback; yield the attempts made."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if self.family == socket.AF_UNIX or _loopback(host):
            return real_connect(self, address)
        attempts.append(f"connect {address!r}")
        raise NetworkBlocked(f"engine tests must not use the network (connect to {address!r})")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is None or _loopback(host if not isinstance(host, bytes) else host.decode()):
            return real_getaddrinfo(host, *args, **kwargs)
        attempts.append(f"resolve {host!r}")
        raise NetworkBlocked(f"engine tests must not use the network (resolve {host!r})")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield attempts


def scan(name: str) -> Path:
    """A scan from the shared fixtures, or a skip saying where it was looked for."""
    path = SCANS / name
    if not path.is_file():
        pytest.skip(f"fixture {path} is absent (the tesseract-test scans live next to the checkout)")
    return path


def require_fonts() -> None:
    if not synthetic.fonts_available():
        pytest.skip(f"DejaVu fonts are missing in {synthetic.FONT_DIR}: apt-get install {synthetic.FONT_PACKAGE}")


@pytest.fixture(scope="session")
def desktop() -> synthetic.Labelled:
    """The 1920×1080 synthetic desktop and its truth, drawn once per session."""
    require_fonts()
    image, truth = synthetic.desktop_1080p()
    image.flags.writeable = False  # engines read shared memory read-only; so do they here
    return image, truth


@pytest.fixture(scope="module")
def network_attempts() -> Iterator[list[str]]:
    """The network guard, up for a whole test module; the module fails if anything tried to get out."""
    with offline() as attempts:
        yield attempts
    assert attempts == [], f"rapidocr tried to use the network: {attempts}"


def bgr(rgb: np.ndarray) -> np.ndarray:
    """An RGB image as the C-contiguous BGR array rapidocr takes."""
    return np.ascontiguousarray(rgb[:, :, ::-1])
