"""Helpers for the client tests: test images, restarting a service, and injecting faults."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from shmbridge.engines.null import checksum
from tests.support import service as service_support
from tests.support.service import RunningService, start_service

FULL = ("--engine-option", "checksum_mode=full")


def image(seed: int, height: int = 48, width: int = 64, channels: int = 3) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def full_checksum(array: np.ndarray) -> str:
    return checksum(array, "full")


def restart(old: RunningService, workdir: Path, *extra: str) -> RunningService:
    """A new service on the same socket path and HTTP port as ``old`` (which must be dead)."""
    assert not old.alive()
    patch = pytest.MonkeyPatch()
    patch.setattr(service_support, "free_port", lambda: old.port)
    try:
        return start_service(workdir, *extra, socket_path=old.socket_path)
    finally:
        patch.undo()


def sever_session(socket_path: Path) -> int:
    """Shut down, from outside, every connection this process holds to ``socket_path``: a dropped session.

    Found through ``/proc/self/fd`` and ``getpeername``, so no client internals are touched. Returns how many.
    """
    severed = 0
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError, ValueError):
            if not os.readlink(entry).startswith("socket:"):
                continue
            probe = socket.socket(fileno=os.dup(int(entry.name)))
            try:
                if probe.family == socket.AF_UNIX and probe.getpeername() == str(socket_path):
                    probe.shutdown(socket.SHUT_RDWR)
                    severed += 1
            finally:
                probe.close()
    return severed


def process_snapshot() -> tuple[set[str], set[str], int]:
    """Open fds (with targets), live threads, and shmbridge mappings of this process."""
    fds = set()
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            fds.add(f"{entry.name}->{os.readlink(entry)}")
    threads = {f"{t.name}:{t.ident}" for t in threading.enumerate()}
    maps = sum("memfd:shmbridge" in line for line in Path("/proc/self/maps").read_text().splitlines())
    return fds, threads, maps
