"""End to end over real processes, sockets and shared memory: zero-copy, crashes, load, peers, boundary."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from shmbridge import protocol as p
from shmbridge.client.session import AsyncSessionClient, SessionClient
from shmbridge.engines.null import checksum
from shmbridge.errors import ErrorCode, PeerRejected, SessionClosed, SessionLimitExceeded
from tests.support.namespaces import isolated_command, namespace_support
from tests.support.rawpeer import RawPeer
from tests.support.service import RunningService, metric, running_service, shm_fds, shm_mappings, wait_until

REPO = Path(__file__).resolve().parents[2]


def test_frames_written_in_place_reach_the_engine_without_a_copy(tmp_path: Path) -> None:
    with running_service(tmp_path, "--engine-option", "checksum_mode=full") as service:
        rng = np.random.default_rng(1)
        with SessionClient(service.socket_path) as session, session.lease(1080, 1920) as lease:
            frame = lease.frame(1080, 1920)
            for _ in range(5):
                frame[:] = rng.integers(0, 256, frame.shape, dtype=np.uint8)
                result = session.submit(lease)
                assert result.checksum == checksum(frame, "full")
            # A strided crop of the frame also travels by reference (row pitch on the wire).
            crop = frame[100:400, 200:900]
            assert session.submit(lease, crop).checksum == checksum(crop, "full")
        text = service.metrics_text()
        assert metric(text, "shmbridge_requests_total", mode="shm_session", outcome="ok") == 6
        assert metric(text, "shmbridge_bytes_copied_total", mode="shm_session") == 0
        assert metric(text, "shmbridge_zero_copy_requests_total", mode="shm_session") == 6
        assert metric(text, "shmbridge_bytes_received_total", mode="shm_session") > 5 * 1920 * 1080 * 3


CRASHING_CLIENT = """
import sys, time, numpy as np
from shmbridge.client.session import SessionClient
session = SessionClient(sys.argv[1]).connect()
lease = session.acquire(640 * 480 * 3)
frame = lease.frame(480, 640)
frame[:] = 9
state = session.state
rid, data = state.ocr_request(lease, frame, __import__("shmbridge.models").models.PixelFormat.RGB, None)
session._send(data)
print("submitted", flush=True)
time.sleep(60)
"""


def test_a_killed_client_leaks_nothing_and_disturbs_no_one(slow_service: RunningService) -> None:
    service = slow_service
    with SessionClient(service.socket_path) as bystander:
        before = bystander.ocr_copy(np.full((32, 32, 3), 5, np.uint8))
        # The bystander's segment, as the service holds it (CPython's mmap keeps a dup of each fd).
        baseline_fds, baseline_maps = sorted(shm_fds(service.pid)), sorted(shm_mappings(service.pid))
        assert baseline_fds and baseline_maps
        victim = subprocess.Popen(
            [sys.executable, "-c", CRASHING_CLIENT, str(service.socket_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert victim.stdout is not None
            assert victim.stdout.readline().strip() == "submitted"
            assert wait_until(lambda: len(shm_mappings(service.pid)) > len(baseline_maps), timeout=5)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
        finally:
            if victim.poll() is None:
                victim.kill()
                victim.wait(10)
        # The in-flight request finishes (400 ms), then the dead session's memory goes away.
        assert wait_until(lambda: sorted(shm_fds(service.pid)) == baseline_fds, timeout=15), shm_fds(service.pid)
        assert wait_until(lambda: sorted(shm_mappings(service.pid)) == baseline_maps, timeout=5)
        assert service.alive()
        after = bystander.ocr_copy(np.full((32, 32, 3), 5, np.uint8))
        assert after.checksum == before.checksum
    assert wait_until(lambda: not shm_fds(service.pid) and not shm_mappings(service.pid), timeout=10)


def test_sixteen_clients_times_five_hundred_requests(null_service: RunningService) -> None:
    errors: list[BaseException] = []
    counts = [0] * 16

    def worker(index: int) -> None:
        try:
            with SessionClient(null_service.socket_path, timeout=60) as session, session.lease(48, 64) as lease:
                frame = lease.frame(48, 64)
                for n in range(500):
                    frame[:] = (index * 31 + n) % 256
                    frame[n % 48, :, 0] = n % 7
                    assert session.submit(lease).checksum == checksum(frame, "full")
                    counts[index] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not errors, errors[:3]
    assert counts == [500] * 16


def test_async_session_pipelines_requests(null_service: RunningService) -> None:
    import asyncio

    async def main() -> None:
        async with AsyncSessionClient(null_service.socket_path) as session:
            images = [np.full((40, 60, 3), i, np.uint8) for i in range(32)]
            results = await asyncio.gather(*(session.ocr_copy(img) for img in images))
            assert [r.checksum for r in results] == [checksum(img, "full") for img in images]

    asyncio.run(main())


def test_a_peer_whose_uid_is_not_allowed_is_refused(tmp_path: Path) -> None:
    other = os.getuid() + 4242
    with running_service(tmp_path, "--allow-uid", str(other), http=False) as service:
        with pytest.raises(PeerRejected, match=f"uid {os.getuid()}"):
            SessionClient(service.socket_path).connect()
        assert "PEER_REJECTED" in service.log()
        assert service.alive()


# The refused peer runs the interpreter alone (-I -S: no site-packages, no checkout on its path), so the
# test does not depend on uid 65534 being able to read the checkout or the virtualenv: it says HELLO with
# bytes made here and hands back what the service answered, which is decoded here.
_RAW_HELLO = """
import socket, sys
peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
peer.settimeout(10)
peer.connect(sys.argv[1])
peer.sendall(bytes.fromhex(sys.argv[2]))
answer = b""
while chunk := peer.recv(65536):
    answer += chunk
sys.stdout.write(answer.hex())
"""


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_a_real_other_uid_is_refused_by_the_peer_check(tmp_path: Path) -> None:
    import tempfile

    # Outside pytest's 0700 tree, so uid 65534 can reach the socket; removed whatever happens.
    with tempfile.TemporaryDirectory(prefix="shmb-peer-") as tmp:
        sock_dir = Path(tmp)
        with running_service(tmp_path, http=False, socket_path=sock_dir / "ocr.sock") as service:
            os.chmod(sock_dir, 0o777)  # let uid 65534 reach the socket so the peer check itself decides
            os.chmod(service.socket_path, 0o666)
            hello = p.encode(p.Hello(1, p.SUPPORTED_VERSIONS, "refused-peer", 0))
            setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            run = subprocess.run(
                [*setpriv, sys.executable, "-I", "-S", "-c", _RAW_HELLO, str(service.socket_path), hello.hex()],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 0, run.stderr
            decoder = p.FrameDecoder()
            decoder.receive_data(bytes.fromhex(run.stdout))
            frame = decoder.next_frame()
            assert frame is not None, "the service closed without an answer"
            answer = p.decode_event(frame)
            assert isinstance(answer, p.Error) and answer.code == ErrorCode.PEER_REJECTED, answer
            assert "uid 65534" in answer.message
            assert "PEER_REJECTED" in service.log()
            assert service.alive()


def test_session_limit_is_a_typed_error(tmp_path: Path) -> None:
    with running_service(tmp_path, "--max-sessions", "1", http=False) as service:
        with SessionClient(service.socket_path) as first:
            with pytest.raises(SessionLimitExceeded):
                SessionClient(service.socket_path).connect()
            assert first.ocr_copy(np.zeros((4, 4, 3), np.uint8)).checksum
        with SessionClient(service.socket_path) as again:  # the slot of the first session was freed
            assert again.ocr_copy(np.zeros((4, 4, 3), np.uint8)).checksum


def test_service_shutdown_fails_pending_calls_with_a_typed_error(tmp_path: Path) -> None:
    service_cm = running_service(tmp_path, "--engine-option", "delay_ms=300", http=False)
    service = service_cm.__enter__()
    try:
        session = SessionClient(service.socket_path, timeout=20).connect()
        assert session.ocr_copy(np.zeros((4, 4, 3), np.uint8)).checksum  # in flight work completes...
        service.stop(signal.SIGKILL)
        with pytest.raises(SessionClosed):
            session.ocr_copy(np.zeros((4, 4, 3), np.uint8))
        session.close()
    finally:
        service_cm.__exit__(None, None, None)


def test_sigterm_drains_in_flight_requests_and_removes_the_socket(slow_service: RunningService) -> None:
    results: list[object] = []

    def call() -> None:
        with SessionClient(slow_service.socket_path, timeout=20) as session:
            results.append(session.ocr_copy(np.zeros((16, 16, 3), np.uint8)))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.15)
    slow_service.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert len(results) == 2 and all(getattr(r, "checksum", None) for r in results), results
    assert slow_service.process.wait(20) == 0
    assert not slow_service.socket_path.exists()


_NAMESPACES = namespace_support()


@pytest.mark.skipif(_NAMESPACES is not None, reason=f"no namespaces here: {_NAMESPACES}")
def test_a_client_behind_a_namespace_boundary_works_end_to_end(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o770)
    with running_service(tmp_path, "--engine-option", "checksum_mode=full", socket_path=shared / "ocr.sock") as service:
        argv = [sys.executable, str(REPO / "tests" / "bridge" / "isolated_client.py"), "/mnt/shared/ocr.sock",
                str(service.port), "20"]  # fmt: skip
        run = subprocess.run(
            isolated_command(shared, argv, workdir=str(REPO), keep=(REPO, Path(sys.prefix))),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"},
        )
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout.strip().splitlines()[-1])
        # /tmp is a fresh tmpfs: empty, but for the path down to the (read-only) checkout when CI cloned it there.
        code_in_tmp = [REPO.resolve().relative_to("/tmp").parts[0]] if REPO.resolve().is_relative_to("/tmp") else []
        assert report == {"dev_shm": [], "tmp": code_in_tmp, "http_reachable": False, "checksums_ok": True}
        assert metric(service.metrics_text(), "shmbridge_bytes_copied_total", mode="shm_session") == 0


BLOCKING_ENGINE = ("--engine-option", "checksum_mode=full", "--engine-option", "delay_ms=2", "--workers", "2")
BLOCKING_ENGINE += ("--queue-size", "4")
SLOTS = 256


@pytest.mark.parametrize(
    "engine_args",
    [
        pytest.param(("--engine-option", "checksum_mode=full"), id="inline-engine"),
        # A blocking engine answers from the loop's side through a writer job; BUSY replies come at once.
        pytest.param(BLOCKING_ENGINE, id="blocking-engine"),
    ],
)
def test_a_client_that_stops_reading_loses_only_its_own_session(tmp_path: Path, engine_args: tuple[str, ...]) -> None:
    """Replies to a peer that never reads fill the socket; the service may wait for them at most
    request_timeout, then that session ends. Meanwhile other sessions and HTTP answer as usual, and the
    service holds no growing buffer of unread replies: the peer's own sends end up blocking, because the
    service stops reading a session whose replies cannot be written (whichever thread writes them)."""
    with running_service(tmp_path, "--request-timeout", "6", *engine_args) as service:
        baseline = len(shm_fds(service.pid))
        with RawPeer(service.socket_path) as peer:
            peer.handshake()
            granted = peer.alloc(64 * 64 * 3, slots=SLOTS)
            # Requests cycle through many slots, so that fewer are refused as SLOT_IN_USE (an error the
            # session thread writes itself) and more are answered by the loop's side (BUSY, results).
            requests = [p.encode(p.OcrRequest(10 + slot, granted.segment, slot, 0, 64, 64, 3, "rgb", 192))
                        for slot in range(granted.slot_count)]  # fmt: skip
            peer.sock.settimeout(0.5)
            sent = 0
            with pytest.raises(TimeoutError):  # both directions fill up: the service stopped reading us
                while sent < 30_000:  # about 5000 fill the buffers; a service that kept reading takes all
                    peer.sock.sendall(requests[sent % len(requests)])
                    sent += 1
            assert sent > 100
            with SessionClient(service.socket_path, timeout=5) as other:  # a bystander is not held up
                frame = np.full((32, 32, 3), 9, np.uint8)
                assert other.ocr_copy(frame).checksum == checksum(frame, "full")
            assert httpx.get(f"{service.url}/health", timeout=5).status_code == 200
            # The stalled session is still there (the service has not hung up on the peer): the bystander
            # did not wait for the stalled session's timeout.
            assert not _hung_up(peer.sock)
            # After request_timeout the service gives up on the stalled peer: its session ends.
            assert wait_until(lambda: _hung_up(peer.sock), timeout=15)
            assert wait_until(lambda: len(shm_fds(service.pid)) == baseline, timeout=15)
        assert service.alive()
        with SessionClient(service.socket_path, timeout=5) as again:
            assert again.ocr_copy(np.zeros((8, 8, 3), np.uint8)).checksum


def _hung_up(sock: socket.socket) -> bool:
    """True once the other end shut the connection down, without reading anything from it."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return any(events & (select.POLLRDHUP | select.POLLHUP) for _fd, events in poller.poll(0))


def test_a_connection_that_never_says_hello_is_closed_but_idle_sessions_stay(tmp_path: Path) -> None:
    """Each connection has a thread, so one that never sends HELLO must not keep it: it gets ERROR TIMEOUT
    after request_timeout and is closed. A session past its WELCOME may stay idle for as long as it likes."""
    with running_service(tmp_path, "--request-timeout", "1", http=False) as service:
        with SessionClient(service.socket_path, timeout=5) as idle, RawPeer(service.socket_path) as silent:
            reply = silent.read_event(timeout=10)
            assert isinstance(reply, p.Error) and reply.code == ErrorCode.TIMEOUT, reply
            assert "HELLO" in reply.message
            assert silent.wait_closed(timeout=10)
            # The welcomed session idled as long as the silent one, and longer than request_timeout.
            assert idle.ocr_copy(np.zeros((8, 8, 3), np.uint8)).checksum
        assert service.alive()
