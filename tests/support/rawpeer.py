"""A protocol peer that sends whatever bytes a test wants and reads the service's frames back."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from shmbridge import protocol as p
from shmbridge.unixsock import recv_with_fds


class RawPeer:
    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.decoder = p.FrameDecoder(64 * 1024 * 1024)
        self.fds: list[int] = []
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_event(self, event: p.Event) -> None:
        self.send(p.encode(event))

    def read_event(self, timeout: float = 10.0) -> p.Event | None:
        """The next frame from the service, or ``None`` at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return p.decode_event(frame)
            if self.eof:
                return None
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data, fds = recv_with_fds(self.sock, 65536)
            self.fds.extend(fds)
            if not data:
                self.eof = True
            else:
                self.decoder.receive_data(data)

    def handshake(self) -> p.Welcome:
        self.send_event(p.Hello(1))
        welcome = self.read_event()
        assert isinstance(welcome, p.Welcome), welcome
        return welcome

    def alloc(self, frame_bytes: int, slots: int = 2) -> p.SegmentGranted:
        self.send_event(p.Alloc(2, frame_bytes, slots))
        granted = self.read_event()
        assert isinstance(granted, p.SegmentGranted), granted
        return granted

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """True once the service has closed the connection (after any frames it sent)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, socket.timeout):
                if self.read_event(deadline - time.monotonic()) is None:
                    return True
        return False

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        self.sock.close()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
