"""``SessionClient``: the blocking low-level session (connect, handshake, lease slots, submit, wait).

It is safe to share between threads: whichever waiting thread finds nobody reading becomes the reader and
hands other threads' replies to them under one condition (no extra thread, so a single caller pays no
thread hop), polling the socket briefly before it sleeps in ``select`` (``client.spin``). That waiting is
all this module owns: what a session knows and decides is ``session_base.SessionBase``, shared with the
asyncio twin ``session_async.AsyncSessionClient`` (importable from here too). It must never decide about
fallback or reconnects (the high-level clients do), and never hold a lock while blocked on the socket.

Zero-copy path::

    with session.lease(1080, 1920) as lease:
        frame = lease.frame(1080, 1920)      # writable view of shared memory
        render_into(frame)
        result = session.submit(lease, frame)

The copying path says so in its name: ``ocr_copy(array)``.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np

from .. import wire as p
from ..errors import RequestTimeout, SessionClosed, ShmBridgeError
from ..models import OcrOptions, OcrResult, PixelFormat
from ..unixsock import recv_with_fds
from .session_async import AsyncSessionClient
from .session_base import DEFAULT_TIMEOUT, RECV_BYTES, SessionBase, frame_bytes
from .slots import PARSE, ParseResult, SlotLease, copy_into, format_of
from .spin import DEFAULT_SPIN, SpinWindow

__all__ = ["DEFAULT_TIMEOUT", "AsyncSessionClient", "SessionClient"]


class SessionClient(SessionBase):
    """A blocking session. Thread-safe; one socket, many requests in flight."""

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT, spin: float = DEFAULT_SPIN
    ) -> None:
        """``spin``: at most this many seconds of polling the socket before sleeping on it, adapted to how
        fast replies come (``client.spin``); 0 never polls."""
        super().__init__(path, timeout)
        self._spin = SpinWindow(spin)
        self._send_lock = threading.Lock()
        self._alloc_lock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False
        self._replies: dict[int, p.Event] = {}
        self._deliver = self._replies.__setitem__  # a reply is filed for its thread: no Python frame per reply

    # -- lifecycle -------------------------------------------------------------------------------

    def connect(self) -> SessionClient:
        """Connect and do the handshake (HELLO → WELCOME). Raises ``ServiceUnavailable`` and friends."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self.path))
        except OSError as exc:
            sock.close()
            raise self._unreachable(exc.strerror or str(exc)) from exc
        sock.settimeout(None)
        self._sock = sock
        try:
            rid, data = self.state.hello()
            self._send(data)
            self.state.welcomed(self._wait(rid, self._deadline(None)))
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> SessionClient:
        return self if self._sock is not None else self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Say BYE, close the socket and unmap every segment. Safe to call twice, from any thread.

        BYE is sent without blocking (a hung service must not hang ``close``), and the socket is shut down
        before it is closed: that wakes a thread blocked reading it, which a bare ``close`` would not.
        """
        with self._cond:
            sock, self._sock = self._sock, None
            bye = self.state.bye() if sock is not None else b""
            self._closing()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.send(bye, socket.MSG_DONTWAIT)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with self._cond:  # let a reader leave select/recv before its fd number can be reused
                deadline = time.monotonic() + 1.0
                while self._reading and time.monotonic() < deadline:
                    self._cond.wait(0.05)
            sock.close()
        with self._cond:
            self.state.close()

    # -- slots -------------------------------------------------------------------------------------

    def acquire(self, nbytes: int, timeout: float | None = None) -> SlotLease:
        """A slot of at least ``nbytes``: a free one, else a new segment, else the next one given back."""
        deadline = self._deadline(timeout)
        while True:
            with self._cond:
                found = self._free_or_wait(nbytes, deadline)
                if isinstance(found, SlotLease):
                    return found
                if found is not None:
                    self._cond.wait(found)  # release() notifies
                    continue
            with self._alloc_lock:
                with self._cond:
                    if self.state.has_class_for(nbytes):
                        continue
                rid, data = self.state.alloc(nbytes)
                self._send(data)
                self.state.granted(self._wait(rid, deadline))

    def release(self, lease: SlotLease) -> None:
        with self._cond:
            self.state.give_back(lease)
            self._cond.notify_all()

    def has_slot_class(self, nbytes: int) -> bool:
        """``SessionBase.has_slot_class`` under the condition: the reading thread may add a size class."""
        with self._cond:
            return self.state.has_class_for(nbytes)

    @contextlib.contextmanager
    def lease(self, height: int, width: int, channels: int = 3, timeout: float | None = None) -> Iterator[SlotLease]:
        """A slot big enough for one frame, returned to the pool when the block ends."""
        lease = self.acquire(frame_bytes(height, width, channels), timeout)
        try:
            lease.frame(height, width, channels)
            yield lease
        finally:
            self._give_back(lease)

    # -- requests ------------------------------------------------------------------------------

    def submit(self, lease: SlotLease, image: np.ndarray | None = None, *,
               pixel_format: PixelFormat | str | None = None, options: OcrOptions | None = None,
               timeout: float | None = None, parse: ParseResult = PARSE) -> OcrResult:  # fmt: skip
        """OCR pixels already written in ``lease`` (zero-copy). The lease stays the caller's afterwards.
        ``parse`` makes the result from the reply's fields (default: ``OcrResult.model_validate``)."""
        rid, data = self.state.submission(lease, image, pixel_format, options)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._send(data)
        try:
            reply = self._wait(rid, deadline)
        except RequestTimeout:
            # The service may still read these pixels: the slot returns only with the late reply, unless
            # that reply slipped in between the timeout and this lock (then the slot is free already).
            with self._cond:
                self.state.abandon(rid, lease, replied=self._replies.pop(rid, None) is not None)
            raise
        return self.state.result_of(reply, lease, parse)

    def ocr_copy(self, image: np.ndarray, *, pixel_format: PixelFormat | str | None = None,
                 options: OcrOptions | None = None, timeout: float | None = None) -> OcrResult:  # fmt: skip
        """OCR any uint8 array by copying it into a slot once (the copying path, named as such)."""
        fmt = format_of(image, pixel_format)
        lease = self.acquire(image.nbytes, timeout)
        try:
            target = self.state.engine_format(fmt)
            frame = copy_into(lease, image, fmt, target)
            return self.submit(lease, frame, pixel_format=target, options=options, timeout=timeout)
        finally:
            self._give_back(lease)

    # -- waiting ---------------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            sock = self._sock
            if sock is None or self._broken is not None:
                self._raise_if_broken()
                raise SessionClosed("the session is not connected")
            try:
                sock.sendall(data)
                return
            except OSError as exc:
                failed = exc
        raise self._send_failed(failed) from failed  # after the send lock: _fail takes the condition

    def _wait(self, rid: int, deadline: float) -> p.Event:
        """Block until the reply to ``rid`` arrives; read the socket if no other thread is reading."""
        with self._cond:
            while True:
                reply = self._replies.pop(rid, None)
                if reply is not None:
                    return reply
                self._raise_if_broken()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._reply_timeout(rid)
                if self._reading:
                    self._cond.wait(remaining)
                    continue
                self._reading = True
                self._cond.release()
                try:
                    chunk = self._read_once(remaining)
                finally:
                    self._cond.acquire()
                    self._reading = False
                if chunk is not None:
                    self._dispatch(self._feed(*chunk))  # with the condition held: replies and free lists
                self._cond.notify_all()

    def _read_once(self, timeout: float) -> tuple[bytes, list[int]] | None:
        """One read of the socket (without the condition held). Errors break the session."""
        sock = self._sock
        if sock is None:
            return None
        try:
            started = time.perf_counter()
            received = self._poll(sock, min(self._spin.window, timeout)) if self._spin.window else None
            if received is None:
                ready, _, _ = select.select([sock], [], [], max(0.0, timeout - (time.perf_counter() - started)))
                if not ready:
                    return None
                received = recv_with_fds(sock, RECV_BYTES)
            self._spin.record(time.perf_counter() - started)
            data, fds = received
        except (OSError, ValueError) as exc:
            self._read_failed(exc)
            return None
        if not data:
            self._closed_by_peer(fds)
            return None
        return data, fds

    @staticmethod
    def _poll(sock: socket.socket, window: float) -> tuple[bytes, list[int]] | None:
        """Non-blocking reads for up to ``window`` seconds; ``None`` if nothing came."""
        clock = time.perf_counter
        deadline = clock() + window
        while True:
            try:
                return recv_with_fds(sock, RECV_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if clock() >= deadline:
                    return None

    def _fail(self, error: ShmBridgeError) -> None:
        with self._cond:
            if self._broken is None:
                self._broken = error
            self._cond.notify_all()
