"""A reference row from a peer zero-copy middleware: an iceoryx2 request-response round trip.

The helper (``python -m shmbridge.bench.iceoryx --root DIR --prefix P --service NAME --max-bytes N``) plays
the service: it receives a request whose payload is the frame (a slice of iceoryx2 shared memory, shape in
a small request header), computes the null engine's sampled checksum over a read-only numpy view of it,
answers with those 8 bytes and wakes the client through an iceoryx2 event. The client (a benchmark worker)
loans a slice, sends it, and waits on its own event for the answer: the iceoryx2 counterpart of
``shm-frame`` (pixels are written where they are sent; the timed part is loan + send + wait + receive).

What differs from shmbridge, on purpose and in iceoryx2's favour: the answer is 8 bytes, not a JSON
``OcrResult`` validated by pydantic, and there is no admission, timeout or metrics bookkeeping.

Files: iceoryx2 keeps its management files under ``--root`` (a private temp dir) and its data segments in
``/dev/shm`` under a run-unique ``--prefix``; ``iceoryx_helper`` removes both when the helper has ended,
even if it died. The helper stops when its stdin closes, or after ``MAX_LIFETIME`` at the latest.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engines.null import checksum

MAX_LIFETIME = 4 * 3600.0
READY_TIMEOUT = 30.0
_WAIT = 0.2  # seconds between checks of the stop flag while idle


class Shape(ctypes.Structure):
    """The request header: the frame's shape (the payload itself is a flat byte slice)."""

    _fields_ = [("height", ctypes.c_uint32), ("width", ctypes.c_uint32), ("channels", ctypes.c_uint32)]


@dataclass(frozen=True)
class IceoryxTarget:
    """Where the helper listens. Picklable: workers receive it."""

    root: str
    prefix: str
    service: str
    max_bytes: int


def unavailable_reason() -> str | None:
    """Why the reference row cannot run here, or ``None`` when it can."""
    if not sys.platform.startswith("linux"):
        return f"iceoryx2 reference runs on Linux only (this is {sys.platform})"
    try:
        import iceoryx2  # noqa: F401
    except ImportError as exc:
        return f"iceoryx2 is not installed ({exc}); install the bench extra: pip install 'shmbridge[bench]'"
    return None


def _node(target: IceoryxTarget) -> tuple[Any, Any]:
    """(iceoryx2 module, node) with every file under the run's root and prefix."""
    import iceoryx2 as iox

    iox.set_log_level(iox.LogLevel.Error)
    config = iox.config.default()
    config.global_cfg.root_path = iox.Path.new(target.root.rstrip("/") + "/")
    config.global_cfg.prefix = iox.FileName.new(target.prefix)
    return iox, iox.NodeBuilder.new().config(config).create(iox.ServiceType.Ipc)


def _services(iox: Any, node: Any, target: IceoryxTarget) -> tuple[Any, Any, Any]:
    """(request-response service, request event, reply event)."""
    rr = (
        node.service_builder(iox.ServiceName.new(target.service))
        .request_response(iox.Slice[ctypes.c_uint8], iox.Slice[ctypes.c_uint8])
        .request_header(Shape)
        .max_active_requests_per_client(2)
        .open_or_create()
    )
    requests = node.service_builder(iox.ServiceName.new(target.service + "/requests")).event().open_or_create()
    replies = node.service_builder(iox.ServiceName.new(target.service + "/replies")).event().open_or_create()
    return rr, requests, replies


# -- the helper (the "service" side) ------------------------------------------------------------------


def serve(target: IceoryxTarget, stop: threading.Event) -> None:
    """Answer requests until ``stop`` is set or ``MAX_LIFETIME`` has passed."""
    iox, node = _node(target)
    rr, requests, replies = _services(iox, node, target)
    server = rr.server_builder().initial_max_slice_len(8).allocation_strategy(iox.AllocationStrategy.Static).create()
    listener = requests.listener_builder().create()
    notifier = replies.notifier_builder().create()
    print("ready", flush=True)
    deadline = time.monotonic() + MAX_LIFETIME
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            listener.timed_wait(iox.Duration.from_secs_f64(_WAIT))
            for _ in range(1024):  # bounded drain: at most this many requests per wake-up
                active = server.receive()
                if active is None:
                    break
                _answer(active)
                del active  # the request's memory goes back to the client's pool
                notifier.notify()
    finally:
        for port in (notifier, listener, server):
            port.delete()
        del node  # a node has no delete(); dropping the last reference removes its files


def _answer(active: Any) -> None:
    shape = active.user_header().contents
    payload = active.payload()
    nbytes = shape.height * shape.width * shape.channels
    if payload.len() < nbytes:
        text = b"badshape"
    else:
        buffer = (ctypes.c_uint8 * nbytes).from_address(payload.as_ptr())
        view = np.frombuffer(buffer, dtype=np.uint8).reshape(shape.height, shape.width, shape.channels)
        view.flags.writeable = False
        text = checksum(view, "sampled").encode("ascii")
    response = active.loan_slice_uninit(8)
    ctypes.memmove(response.payload().as_ptr(), text, 8)
    response.assume_init().send()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench.iceoryx", description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--max-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the benchmark closed our stdin or died
        stop.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    serve(IceoryxTarget(args.root, args.prefix, args.service, args.max_bytes), stop)
    return 0


@contextlib.contextmanager
def iceoryx_helper(max_bytes: int) -> Iterator[tuple[IceoryxTarget, int]]:
    """Start the helper; yield its target and pid; stop it and remove every file iceoryx2 made."""
    root = tempfile.mkdtemp(prefix="shmb-iox-")
    prefix = f"shmbb{os.getpid()}x{time.monotonic_ns() % 100000}_"
    target = IceoryxTarget(root, prefix, "shmbridge/bench/frames", max_bytes)
    args = [sys.executable, "-m", "shmbridge.bench.iceoryx", "--root", root, "--prefix", prefix,
            "--service", target.service, "--max-bytes", str(max_bytes)]  # fmt: skip
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        _wait_ready(process)
        yield target, process.pid
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(root, ignore_errors=True)
        for leftover in glob.glob(f"/dev/shm/{prefix}*"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(READY_TIMEOUT)
    if not result or result[0].strip() != "ready":
        raise RuntimeError(f"the iceoryx2 helper did not start (exit code {process.poll()})")


# -- the client (inside a benchmark worker) ------------------------------------------------------------


class IceoryxClient:
    """One client port plus the two event ports. Not thread-safe; one per worker process."""

    def __init__(self, target: IceoryxTarget, timeout: float = 30.0) -> None:
        self.iox, self.node = _node(target)
        rr, requests, replies = _services(self.iox, self.node, target)
        self.client = (
            rr.client_builder()
            .initial_max_slice_len(target.max_bytes)
            .allocation_strategy(self.iox.AllocationStrategy.Static)
            .create()
        )
        self.notifier = requests.notifier_builder().create()
        self.listener = replies.listener_builder().create()
        self.timeout = timeout
        self._wait = self.iox.Duration.from_secs_f64(0.05)

    def round_trip(self, height: int, width: int, pixels: np.ndarray | None = None) -> str:
        """Loan a slice, (write ``pixels`` into it), send, wait for the answer; return the checksum."""
        nbytes = height * width * 3
        request = self.client.loan_slice_uninit(nbytes)
        header = request.user_header().contents
        header.height, header.width, header.channels = height, width, 3
        if pixels is not None:  # rendering straight into the loan, as a producer would
            target = (ctypes.c_uint8 * nbytes).from_address(request.payload().as_ptr())
            np.copyto(np.frombuffer(target, dtype=np.uint8).reshape(height, width, 3), pixels)
        pending = request.assume_init().send()
        self.notifier.notify()
        deadline = time.monotonic() + self.timeout
        while True:
            response = pending.receive()
            if response is not None:
                text = ctypes.string_at(response.payload().as_ptr(), 8).decode("ascii", "replace")
                del response, pending
                return text
            if time.monotonic() > deadline:
                raise TimeoutError("no iceoryx2 response within the timeout")
            self.listener.timed_wait(self._wait)

    def close(self) -> None:
        for port in (self.listener, self.notifier, self.client):
            with contextlib.suppress(Exception):
                port.delete()
        self.node = None


if __name__ == "__main__":
    sys.exit(main())
