"""Hostile peers on the socket door: each test reproduces one way a peer could deny service (issue 13)
and checks that it now gets a typed error while everyone else carries on.

Every loop is bounded in count and time; every service runs in its own process and is stopped by its
context manager.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from shmbridge import protocol as p
from shmbridge.errors import ErrorCode
from shmbridge.memory import Segment
from tests.support.rawpeer import RawPeer
from tests.support.service import running_service, wait_until

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")


def _raw_frame(frame_type: p.FrameType, request_id: int, body: bytes) -> bytes:
    return p.HEADER.pack(p.MAGIC, p.VERSION, frame_type, 0, request_id, len(body)) + body


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_a_trickled_hello_is_cut_off_at_its_deadline(tmp_path: Path) -> None:
    """One byte every 0.4 s kept a connection open for ever when the timeout was per read."""
    with running_service(tmp_path, "--request-timeout", "2", http=False) as service:
        hello = p.encode(p.Hello(1, client="trickle"))
        assert len(hello) * 0.4 > 8  # the whole HELLO would take longer than the test waits
        with RawPeer(service.socket_path) as peer:
            started = time.monotonic()
            answered_after = None
            for byte in hello:
                if _readable(peer.sock) or time.monotonic() - started > 8:
                    break
                try:
                    peer.send(bytes([byte]))
                except OSError:  # the service closed the connection
                    break
                time.sleep(0.4)
            event = peer.read_event(timeout=5)
            answered_after = time.monotonic() - started
            assert isinstance(event, p.Error) and event.code == ErrorCode.TIMEOUT, event
            assert answered_after < 8, answered_after
            assert peer.wait_closed(timeout=5)


def test_the_oldest_pending_connection_is_shed(tmp_path: Path) -> None:
    """Connections that never say HELLO are bounded in number; the oldest goes first."""
    with running_service(tmp_path, http=False) as service:  # max_pending_connections: 64 by default
        idle = [RawPeer(service.socket_path) for _ in range(66)]
        try:
            for peer in idle[:2]:
                event = peer.read_event(timeout=10)
                assert isinstance(event, p.Error) and event.code == ErrorCode.BUSY, event
                assert "oldest" in event.message
                assert peer.wait_closed(timeout=5)
            assert not _readable(idle[-1].sock)  # the newest still waits for its HELLO
            with RawPeer(service.socket_path) as fresh:
                fresh.handshake()  # a client that says HELLO at once is served
        finally:
            for peer in idle:
                peer.close()


def test_alloc_takes_strict_slot_counts(tmp_path: Path) -> None:
    with running_service(tmp_path, http=False) as service, RawPeer(service.socket_path) as peer:
        peer.handshake()
        for rid, slots in ((11, -5), (12, 2**40), (13, 257)):
            peer.send_event(p.Alloc(rid, 64 * 1024, slots))
            event = peer.read_event()
            assert isinstance(event, p.Error) and event.request_id == rid, event
            assert event.code == ErrorCode.BAD_DIMENSIONS and "slots" in event.message
        peer.send_event(p.Alloc(14, 64 * 1024, 3))
        granted = peer.read_event()
        assert isinstance(granted, p.SegmentGranted) and granted.slot_count == 3, granted


@pytest.mark.parametrize("body", [b"{}", b'{"version": 1, "session_id": "x"}'], ids=["malformed", "valid"])
def test_a_welcome_from_the_client_ends_the_session_whatever_its_body(tmp_path: Path, body: bytes) -> None:
    """One rule for frames a client may never send: a malformed WELCOME is treated like a valid one."""
    with running_service(tmp_path, http=False) as service, RawPeer(service.socket_path) as peer:
        peer.handshake()
        peer.send(_raw_frame(p.FrameType.WELCOME, 21, body))
        event = peer.read_event()
        assert isinstance(event, p.Error) and event.code == ErrorCode.UNEXPECTED_FRAME, event
        assert peer.wait_closed(timeout=5)


def _hoard_segments(peer: RawPeer, limit: int) -> p.Error:
    """ALLOC one-slot 64 KiB segments until the service refuses one; return the refusal."""
    for rid in range(100, 100 + limit):
        peer.send_event(p.Alloc(rid, 64 * 1024, 1))
        event = peer.read_event()
        while peer.fds:  # the service keeps its mapping; the test needs no fd of its own
            os.close(peer.fds.pop())
        if not isinstance(event, p.SegmentGranted):
            assert isinstance(event, p.Error), f"the session ended instead of refusing: {event}"
            return event
    raise AssertionError(f"{limit} segments were granted without a refusal")


def _limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


@linux_only
def test_fd_hoarders_get_typed_errors_and_new_sessions_still_open(tmp_path: Path) -> None:
    """Peers holding many small segments (and HTTP clients registering regions under ever new names)
    used to take the service to its open-file limit, after which every new session died."""
    import httpx

    region_dir = tmp_path / "regions"
    region_dir.mkdir()
    with running_service(
        tmp_path, "--max-sessions", "8", "--region-dir", str(region_dir), launcher=("prlimit", "--nofile=256:512")
    ) as service:
        assert _limits(service.pid) == (512, 512)  # the soft limit was raised to the hard one
        hoarders = [RawPeer(service.socket_path) for _ in range(6)]
        try:
            refusals = []
            for peer in hoarders:
                peer.handshake()
                refusals.append(_hoard_segments(peer, 300))
            codes = {event.code for event in refusals}
            assert codes <= {ErrorCode.SEGMENT_LIMIT, ErrorCode.DESCRIPTOR_LIMIT}, refusals
            assert ErrorCode.DESCRIPTOR_LIMIT in codes  # the budget, not only the per-session limit, held
            with RawPeer(service.socket_path) as newcomer:
                newcomer.handshake()  # a new session opens although no fd is left for segments
                newcomer.send_event(p.Alloc(7, 64 * 1024, 1))
                refused = newcomer.read_event()
                assert isinstance(refused, p.Error) and refused.code == ErrorCode.DESCRIPTOR_LIMIT, refused
                hoarders.pop(0).close()  # the first hoarder (64 segments) leaves: its descriptors come back
                granted = None
                deadline = time.monotonic() + 10
                while granted is None and time.monotonic() < deadline:
                    newcomer.send_event(p.Alloc(8, 64 * 1024, 1))
                    event = newcomer.read_event()
                    if isinstance(event, p.SegmentGranted):
                        granted = event
                    else:
                        time.sleep(0.1)
                assert granted is not None
            assert httpx.get(f"{service.url}/health", timeout=10).status_code == 200
        finally:
            for peer in hoarders:
                peer.close()

        # Over HTTP the per-client region limit used to be dodged by a new X-Shmbridge-Client each time.
        for index in range(300):
            (region_dir / f"r{index}").write_bytes(b"x")
        refused_at = None
        with httpx.Client(base_url=service.url, timeout=10) as http:
            for index in range(300):
                response = http.post(
                    "/api/v1/shmem/regions", json={"name": f"r{index}"}, headers={"X-Shmbridge-Client": f"c{index}"}
                )
                if response.status_code != 201:
                    assert response.status_code in (413, 503), response.text
                    refused_at = index
                    break
            assert refused_at is not None and refused_at <= 256
            assert http.get("/health").status_code == 200
            assert http.get("/api/v1/bridge/info").status_code == 200

        # Idle TCP connections, which uvicorn alone would keep for ever, are counted too: beyond their
        # share they get a bare 503, and sessions are not touched.
        idle = [socket.create_connection(("127.0.0.1", service.port), timeout=10) for _ in range(100)]
        try:
            refused = 0
            for conn in idle[-20:]:
                conn.settimeout(5)
                refused += conn.recv(64).startswith(b"HTTP/1.1 503")
            assert refused == 20
            with RawPeer(service.socket_path) as newcomer:
                newcomer.handshake()
        finally:
            for conn in idle:
                conn.close()
        assert wait_until(lambda: httpx.get(f"{service.url}/health", timeout=10).status_code == 200, timeout=10)
        assert service.alive()


def _mapping_rss(address: int) -> int:
    """Rss (bytes) of the mapping that starts at ``address`` in this process."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for index, line in enumerate(lines):
        start = line.split("-", 1)[0]
        if "-" in line.split()[0] and int(start, 16) == address:
            for detail in lines[index + 1 :]:
                if detail.startswith("Rss:"):
                    return int(detail.split()[1]) * 1024
    raise AssertionError("mapping not found")


@linux_only
def test_creating_a_segment_lets_other_threads_run_and_still_prefaults() -> None:
    """``mmap(MAP_POPULATE)`` faulted the pages in while holding the GIL, freezing every session thread.
    Compared within one run (no absolute time): the longest pause another thread sees must be a small
    part of the creation, where it used to be nearly all of it."""
    gaps: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.05)
        gaps.clear()
        started = time.perf_counter()
        segment = Segment.create(1, 64 << 20, 2)  # 128 MiB
        took = time.perf_counter() - started
        longest = max(gaps)
    finally:
        stop.set()
        thread.join(5)
    try:
        address = segment.slot_buffer(0).ctypes.data
        assert _mapping_rss(address) == segment.nbytes  # the page tables are filled at creation
        assert not np.any(segment.slot_buffer(1)[:: 1 << 20])
    finally:
        segment.close()
    assert longest < took / 2, (longest, took)
