"""The attacks of ``python -m shmbridge.bench.abuse``: each is a function run in a process of its own
until ``stop`` is set, counting what the service answered in ``outcomes``.

They speak the protocol and HTTP directly (raw frames, raw sockets), as a hostile peer would, and close
every descriptor they receive. Nothing here measures latency: ``abuse`` does that from the bystander.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .. import wire as p
from ..errors import ErrorCode
from .service import ServiceHandle

MiB = 1 << 20


def _connect(path: str) -> socket.socket:
    """Connect, retrying for up to 10 s while the listener's backlog is full (EAGAIN on a Unix socket)."""
    deadline = time.monotonic() + 10
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _Peer:
    """A raw protocol peer: frames out, events in; closes every fd it receives at once."""

    def __init__(self, path: str) -> None:
        self.sock = _connect(path)
        self.decoder = p.FrameDecoder(1 << 20)

    def ask(self, event: p.Event) -> p.Event | None:
        self.sock.sendall(p.encode(event))
        while (frame := self.decoder.next_frame()) is None:
            data, ancdata, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            for _level, _kind, payload in ancdata:
                for (fd,) in struct.iter_unpack("i", payload[: len(payload) - len(payload) % 4]):
                    os.close(fd)
            if not data:
                return None
            self.decoder.receive_data(data)
        return p.decode_event(frame)

    def close(self) -> None:
        self.sock.close()


def _count(outcomes: dict[str, int], key: str) -> None:
    outcomes[key] = outcomes.get(key, 0) + 1


def _outcome(event: p.Event | None) -> str:
    if event is None:
        return "closed"
    if isinstance(event, p.Error):
        try:
            return ErrorCode(event.code).name
        except ValueError:
            return str(event.code)
    return type(event).__name__


def alloc_churn(handle: ServiceHandle, stop: Any, outcomes: dict[str, int]) -> None:
    while not stop.is_set():
        peer = _Peer(str(handle.socket_path))
        try:
            peer.ask(p.Hello(1, client="alloc-churn"))
            for rid in range(4):
                _count(outcomes, _outcome(peer.ask(p.Alloc(10 + rid, 128 * MiB - 4096, 1))))
        finally:
            peer.close()


def fd_hoard(handle: ServiceHandle, stop: Any, outcomes: dict[str, int]) -> None:
    peers = []
    try:
        for _ in range(16):
            peer = _Peer(str(handle.socket_path))
            peers.append(peer)
            if not isinstance(peer.ask(p.Hello(1, client="fd-hoard")), p.Welcome):
                _count(outcomes, "hello refused")
                continue
            for rid in range(200):
                result = _outcome(peer.ask(p.Alloc(100 + rid, 64 * 1024, 1)))
                _count(outcomes, result)
                if result != "SegmentGranted":
                    break
        fresh = _Peer(str(handle.socket_path))  # does a new session still open?
        _count(outcomes, f"new session: {_outcome(fresh.ask(p.Hello(1, client='newcomer')))}")
        fresh.close()
        assert handle.region_dir is not None and handle.url is not None
        names = []
        with httpx.Client(base_url=handle.url, timeout=10) as http:
            for index in range(600):
                name = f"hoard-{index}"
                (Path(handle.region_dir) / name).write_bytes(b"x")
                response = http.post("/api/v1/shmem/regions", json={"name": name}, headers={"X-Shmbridge-Client": name})
                _count(outcomes, f"region {response.status_code}")
                if response.status_code != 201:
                    break
                names.append(name)
            _count(outcomes, f"health {http.get('/health').status_code}")
            stop.wait()
            for name in names:
                http.delete(f"/api/v1/shmem/regions/{name}")
                (Path(handle.region_dir) / name).unlink(missing_ok=True)
    finally:
        for peer in peers:
            peer.close()


def trickle(handle: ServiceHandle, stop: Any, outcomes: dict[str, int]) -> None:
    hello = p.encode(p.Hello(1, client="trickle"))
    conns = [_connect(str(handle.socket_path)) for _ in range(200)]
    for conn in conns:
        conn.setblocking(False)
    position = 0
    open_conns = set(range(len(conns)))
    while open_conns:
        stopping = stop.wait(1.5)
        for index in list(open_conns):
            try:
                conns[index].recv(4096, socket.MSG_PEEK)  # an ERROR, or EOF: the service cut it off
            except BlockingIOError:
                try:
                    conns[index].send(hello[position % len(hello) : position % len(hello) + 1])
                    continue
                except OSError:
                    pass
            except OSError:
                pass
            open_conns.discard(index)
            _count(outcomes, "cut off by the service")
        position += 1
        if stopping:
            break
    outcomes["still open at the end"] = len(open_conns)
    for conn in conns:
        conn.close()


def stalled_bodies(handle: ServiceHandle, stop: Any, outcomes: dict[str, int]) -> None:
    assert handle.url is not None
    host, port = handle.url.rsplit("/", 1)[-1].split(":")
    request = (
        "POST /api/v1/ocr?height=4096&width=8192&channels=4 HTTP/1.1\r\nHost: abuse\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {128 * MiB}\r\n\r\n0123456789"
    ).encode()
    conns = []
    for _ in range(30):
        conn = socket.create_connection((host, int(port)), timeout=10)
        conn.sendall(request)
        conns.append(conn)
    stop.wait()
    for conn in conns:
        conn.setblocking(False)
        try:
            answer = conn.recv(64)
            _count(outcomes, answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed")
        except OSError:
            _count(outcomes, "still waiting")
        conn.close()


def chained_tiff(frames: int) -> bytes:
    """A little-endian TIFF of ``frames`` 1x1 gray images, each its own IFD, all sharing one pixel."""
    entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, 1), (279, 4, 1, 1)]  # fmt: skip
    ifd_size = 2 + 12 * len(entries) + 4
    body = bytearray(b"II*\x00" + struct.pack("<I", 10) + b"\x80\x00")
    fixed = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *entry) for entry in entries)
    for index in range(frames):
        body += fixed + struct.pack("<I", 10 + (index + 1) * ifd_size if index + 1 < frames else 0)
    return bytes(body)


def tiff(handle: ServiceHandle, stop: Any, outcomes: dict[str, int]) -> None:
    data = chained_tiff(100_000)
    took: list[float] = []
    with httpx.Client(base_url=str(handle.url), timeout=60) as http:
        while not stop.is_set():
            started = time.perf_counter()
            response = http.post("/api/v1/ocr", content=data, headers={"Content-Type": "image/tiff"})
            took.append(time.perf_counter() - started)
            _count(outcomes, f"status {response.status_code}")
    if took:
        outcomes["slowest answer ms"] = round(max(took) * 1000)


def truncate(handle: ServiceHandle, stop: Any, outcomes: dict[str, int]) -> None:
    assert handle.region_dir is not None
    height = width = 512
    size = height * width * 3
    path = Path(handle.region_dir) / "truncated"
    path.write_bytes(bytes(size))
    done = threading.Event()

    def truncate_loop() -> None:
        while not done.is_set():
            os.truncate(path, 0)
            os.truncate(path, size)
            outcomes["truncations"] = outcomes.get("truncations", 0) + 1

    with httpx.Client(base_url=str(handle.url), timeout=10) as http:
        http.post("/api/v1/shmem/regions", json={"name": "truncated"})
        truncator = threading.Thread(target=truncate_loop)
        truncator.start()
        try:
            while not stop.is_set():
                try:
                    response = http.post("/api/v1/shmem/ocr", json={"region": "truncated", "height": height,
                                                                    "width": width, "channels": 3})  # fmt: skip
                    _count(outcomes, f"status {response.status_code}")
                except httpx.HTTPError as exc:
                    _count(outcomes, f"transport error {type(exc).__name__}")
                    time.sleep(0.1)
        finally:
            done.set()
            truncator.join()
        http.delete("/api/v1/shmem/regions/truncated")
    path.unlink(missing_ok=True)


ATTACKS: dict[str, Callable[[ServiceHandle, Any, dict[str, int]], None]] = {
    "alloc-churn": alloc_churn,
    "fd-hoard": fd_hoard,
    "trickle": trickle,
    "stalled-bodies": stalled_bodies,
    "tiff": tiff,
    "truncate": truncate,
}
