"""Low-level session clients: connect, handshake, lease slots, submit, wait for replies with a timeout.

``SessionClient`` is for blocking code and is safe to share between threads: whichever waiting thread
finds nobody reading becomes the reader and hands other threads' replies to them (no extra thread, so a
single caller pays no thread hop). ``AsyncSessionClient`` runs one reader task and pipelines any number of
requests. Both keep the bookkeeping in ``slots.SessionState`` and differ only in how they wait.

Zero-copy path::

    with session.lease(1080, 1920) as lease:
        frame = lease.frame(1080, 1920)      # writable view of shared memory
        render_into(frame)
        result = session.submit(lease, frame)

The copying path says so in its name: ``ocr_copy(array)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np

from .. import wire as p
from ..errors import (
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
    SessionClosed,
    ShmBridgeError,
    UsageError,
)
from ..models import OcrOptions, OcrResult, PixelFormat
from ..unixsock import recv_with_fds, wait_readable
from .slots import SessionState, SlotLease, copy_into, error_of, format_of
from .spin import DEFAULT_SPIN, SpinWindow

_RECV = 32 * 1024  # below malloc's mmap threshold: a bigger buffer costs page faults on every read
DEFAULT_TIMEOUT = 30.0


def _frame_bytes(height: int, width: int, channels: int) -> int:
    return height * width * channels


def _connect_socket(path: str | os.PathLike[str], timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise ServiceUnavailable(f"socket {path}: {exc.strerror or exc}") from exc
    return sock


class SessionClient:
    """A blocking session. Thread-safe; one socket, many requests in flight."""

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT, spin: float = DEFAULT_SPIN
    ) -> None:
        """``spin``: at most this many seconds of polling the socket before sleeping on it, adapted to how
        fast replies come (``client.spin``); 0 never polls."""
        self.path = Path(path)
        self.timeout = timeout
        self._spin = SpinWindow(spin)
        self.state = SessionState()
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._alloc_lock = threading.Lock()
        self._cond = threading.Condition()
        self._reading = False
        self._replies: dict[int, p.Event] = {}
        self._broken: ShmBridgeError | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def connect(self) -> SessionClient:
        """Connect and do the handshake (HELLO → WELCOME). Raises ``ServiceUnavailable`` and friends."""
        sock = _connect_socket(self.path, self.timeout)
        sock.settimeout(None)
        self._sock = sock
        try:
            rid, data = self.state.hello()
            self._send(data)
            welcome = self._wait(rid, time.monotonic() + self.timeout)
            if not isinstance(welcome, p.Welcome):
                raise error_of(welcome)
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
            if self._broken is None:
                self._broken = SessionClosed("the session was closed")
            self._cond.notify_all()
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

    @property
    def connected(self) -> bool:
        return self._sock is not None and self._broken is None

    @property
    def welcome(self) -> p.Welcome:
        if self.state.welcome is None:
            raise UsageError("the session is not connected")
        return self.state.welcome

    # -- slots -------------------------------------------------------------------------------------

    def acquire(self, nbytes: int, timeout: float | None = None) -> SlotLease:
        """A slot of at least ``nbytes``: a free one, else a new segment, else the next one given back."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            with self._cond:
                self._raise_if_broken()
                lease = self.state.try_lease(nbytes)
                if lease is not None:
                    return lease
                if self.state.has_class_for(nbytes):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise RequestTimeout(f"every slot for {nbytes}-byte frames stayed lent until the timeout")
                    self._cond.wait(remaining)  # release() notifies
                    continue
            with self._alloc_lock:
                with self._cond:
                    if self.state.has_class_for(nbytes):
                        continue
                self._allocate(nbytes, deadline)

    def _allocate(self, nbytes: int, deadline: float) -> None:
        rid, data = self.state.alloc(nbytes)
        self._send(data)
        reply = self._wait(rid, deadline)
        if not isinstance(reply, p.SegmentGranted):
            raise error_of(reply)

    def release(self, lease: SlotLease) -> None:
        with self._cond:
            self.state.give_back(lease)
            self._cond.notify_all()

    def has_slot_class(self, nbytes: int) -> bool:
        """True when slots for ``nbytes`` exist, so ``acquire`` only waits for one (it never allocates)."""
        with self._cond:
            return self.state.has_class_for(nbytes)

    def owns(self, lease: SlotLease) -> bool:
        """True when ``lease`` is a slot of this (still open) session."""
        with self._cond:
            return self.state.segments.get(lease.segment.id) is lease.segment

    @contextlib.contextmanager
    def lease(self, height: int, width: int, channels: int = 3, timeout: float | None = None) -> Iterator[SlotLease]:
        """A slot big enough for one frame, returned to the pool when the block ends."""
        lease = self.acquire(_frame_bytes(height, width, channels), timeout)
        try:
            lease.frame(height, width, channels)
            yield lease
        finally:
            if not lease.released:
                self.release(lease)

    # -- requests ------------------------------------------------------------------------------

    def submit(
        self,
        lease: SlotLease,
        image: np.ndarray | None = None,
        *,
        pixel_format: PixelFormat | str | None = None,
        options: OcrOptions | None = None,
        timeout: float | None = None,
    ) -> OcrResult:
        """OCR pixels already written in ``lease`` (zero-copy). The lease stays the caller's afterwards."""
        rid, data = self.state.submission(lease, image, pixel_format, options)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._send(data)
        try:
            reply = self._wait(rid, deadline)
        except RequestTimeout:
            # The service may still read these pixels: the slot returns only with the late reply, unless
            # that reply slipped in between the timeout and this lock (then the slot is free already).
            with self._cond:
                self.state.ledger.abandon(rid, lease, replied=self._replies.pop(rid, None) is not None)
            raise
        return self.state.result_of(reply, lease)

    def ocr_copy(
        self,
        image: np.ndarray,
        *,
        pixel_format: PixelFormat | str | None = None,
        options: OcrOptions | None = None,
        timeout: float | None = None,
    ) -> OcrResult:
        """OCR any uint8 array by copying it into a slot once (the copying path, named as such)."""
        fmt = format_of(image, pixel_format)
        lease = self.acquire(image.nbytes, timeout)
        try:
            target = self.state.engine_format(fmt)
            frame = copy_into(lease, image, fmt, target)
            return self.submit(lease, frame, pixel_format=target, options=options, timeout=timeout)
        finally:
            if not lease.released:
                self.release(lease)

    # -- I/O -----------------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            sock = self._sock
            if sock is None or self._broken is not None:
                self._raise_if_broken()
                raise SessionClosed("the session is not connected")
            try:
                sock.sendall(data)
            except OSError as exc:
                self._fail(SessionClosed(f"sending to the service failed: {exc}"))
                raise self._broken from exc  # type: ignore[misc]

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
                    raise RequestTimeout(f"no reply from the service within the timeout (request {rid})")
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
                    self._dispatch(self._feed(*chunk))
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
                received = recv_with_fds(sock, _RECV)
            self._spin.record(time.perf_counter() - started)
            data, fds = received
        except (OSError, ValueError) as exc:
            self._fail(SessionClosed(f"reading from the service failed: {exc}"))
            return None
        if not data:
            for fd in fds:
                os.close(fd)
            self._fail(SessionClosed("the service closed the session"))
            return None
        return data, fds

    @staticmethod
    def _poll(sock: socket.socket, window: float) -> tuple[bytes, list[int]] | None:
        """Non-blocking reads for up to ``window`` seconds; ``None`` if nothing came."""
        clock = time.perf_counter
        deadline = clock() + window
        while True:
            try:
                return recv_with_fds(sock, _RECV, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if clock() >= deadline:
                    return None

    def _feed(self, data: bytes, fds: list[int]) -> list[p.Event]:
        """Decode with the condition held: attaching a segment changes the free lists other threads read."""
        if self.state.closed:
            for fd in fds:
                os.close(fd)
            return []
        try:
            return self.state.feed(data, fds)
        except ShmBridgeError as exc:
            self._fail(exc if isinstance(exc, ProtocolError) else SessionClosed(str(exc)))
            return []

    def _dispatch(self, events: list[p.Event]) -> None:
        """Called with the condition held: file each reply under its request id."""
        for event in events:
            rid = event.request_id
            if isinstance(event, p.Bye) or (isinstance(event, p.Error) and rid == 0):
                self._broken = SessionClosed(f"the service ended the session: {getattr(event, 'reason', '')}"
                                             if isinstance(event, p.Bye) else error_of(event).args[0])  # fmt: skip
                if isinstance(event, p.Error):
                    self._broken = error_of(event)  # type: ignore[assignment]
                continue
            if self.state.ledger.late_reply(rid):  # its slot is free again; nobody waits for it
                continue
            self._replies[rid] = event

    def _fail(self, error: ShmBridgeError) -> None:
        with self._cond:
            if self._broken is None:
                self._broken = error
            self._cond.notify_all()

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise self._broken


class AsyncSessionClient:
    """An asyncio session: one reader task, any number of requests pipelined on one socket."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.state = SessionState()
        self._sock: socket.socket | None = None
        self._waiters: dict[int, asyncio.Future[p.Event]] = {}
        self._freed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._broken: ShmBridgeError | None = None
        self._alloc_lock = asyncio.Lock()

    async def connect(self) -> AsyncSessionClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, os.fspath(self.path)), self.timeout)
        except (OSError, TimeoutError) as exc:
            sock.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"no answer in {self.timeout}s"
            raise ServiceUnavailable(f"socket {self.path}: {reason}") from exc
        self._sock = sock
        self._reader = loop.create_task(self._read_loop(), name="shmbridge-session-reader")
        try:
            rid, data = self.state.hello()
            welcome = await self._request(rid, data, self.timeout)
            if not isinstance(welcome, p.Welcome):
                raise error_of(welcome)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> AsyncSessionClient:
        return self if self._sock is not None else await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._sock is not None and self._broken is None

    @property
    def welcome(self) -> p.Welcome:
        """The service's WELCOME (version, session id, limits, engine); ``UsageError`` before ``connect``."""
        if self.state.welcome is None:
            raise UsageError("the session is not connected")
        return self.state.welcome

    async def close(self) -> None:
        sock, self._sock = self._sock, None
        self._fail(SessionClosed("the session was closed"))
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.send(self.state.bye())
            sock.close()
        self.state.close()

    # -- slots -----------------------------------------------------------------------------------

    async def acquire(self, nbytes: int, timeout: float | None = None) -> SlotLease:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            self._raise_if_broken()
            lease = self.state.try_lease(nbytes)
            if lease is not None:
                return lease
            if not self.state.has_class_for(nbytes):
                async with self._alloc_lock:
                    if not self.state.has_class_for(nbytes):
                        rid, data = self.state.alloc(nbytes)
                        reply = await self._request(rid, data, deadline - time.monotonic())
                        if not isinstance(reply, p.SegmentGranted):
                            raise error_of(reply)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout(f"no free slot for {nbytes} bytes became available in time")
            self._freed.clear()
            try:
                await asyncio.wait_for(self._freed.wait(), remaining)
            except TimeoutError:
                raise RequestTimeout(f"no free slot for {nbytes} bytes became available in time") from None

    def release(self, lease: SlotLease) -> None:
        self.state.give_back(lease)
        self._freed.set()

    def has_slot_class(self, nbytes: int) -> bool:
        """True when slots for ``nbytes`` exist, so ``acquire`` only waits for one (it never allocates)."""
        return self.state.has_class_for(nbytes)

    def owns(self, lease: SlotLease) -> bool:
        """True when ``lease`` is a slot of this (still open) session."""
        return self.state.segments.get(lease.segment.id) is lease.segment

    @contextlib.asynccontextmanager
    async def lease(
        self, height: int, width: int, channels: int = 3, timeout: float | None = None
    ) -> AsyncIterator[SlotLease]:
        lease = await self.acquire(_frame_bytes(height, width, channels), timeout)
        try:
            lease.frame(height, width, channels)
            yield lease
        finally:
            if not lease.released:
                self.release(lease)

    # -- requests --------------------------------------------------------------------------------

    async def submit(
        self,
        lease: SlotLease,
        image: np.ndarray | None = None,
        *,
        pixel_format: PixelFormat | str | None = None,
        options: OcrOptions | None = None,
        timeout: float | None = None,
    ) -> OcrResult:
        rid, data = self.state.submission(lease, image, pixel_format, options)
        try:
            reply = await self._request(rid, data, self.timeout if timeout is None else timeout)
        except RequestTimeout:
            self.state.ledger.abandon(rid, lease)  # the service's until the late reply
            raise
        return self.state.result_of(reply, lease)

    async def ocr_copy(
        self,
        image: np.ndarray,
        *,
        pixel_format: PixelFormat | str | None = None,
        options: OcrOptions | None = None,
        timeout: float | None = None,
    ) -> OcrResult:
        fmt = format_of(image, pixel_format)
        lease = await self.acquire(image.nbytes, timeout)
        try:
            target = self.state.engine_format(fmt)
            frame = copy_into(lease, image, fmt, target)
            return await self.submit(lease, frame, pixel_format=target, options=options, timeout=timeout)
        finally:
            if not lease.released:
                self.release(lease)

    # -- I/O ---------------------------------------------------------------------------------------

    async def _request(self, rid: int, data: bytes, timeout: float) -> p.Event:
        self._raise_if_broken()
        sock = self._sock
        if sock is None:
            raise SessionClosed("the session is not connected")
        future: asyncio.Future[p.Event] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = future
        try:
            try:
                await asyncio.get_running_loop().sock_sendall(sock, data)
            except OSError as exc:
                self._fail(SessionClosed(f"sending to the service failed: {exc}"))
                raise self._broken from exc  # type: ignore[misc]
            try:
                return await asyncio.wait_for(future, max(timeout, 0.0))
            except TimeoutError:
                raise RequestTimeout(f"no reply from the service within {timeout:.3g}s (request {rid})") from None
        finally:
            self._waiters.pop(rid, None)
            if future.done() and not future.cancelled():
                future.exception()  # a failure _fail() set on it is raised here already: mark it retrieved

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self._sock
        assert sock is not None
        try:
            while True:
                await wait_readable(loop, sock)
                try:
                    data, fds = recv_with_fds(sock, _RECV)
                except BlockingIOError:
                    continue
                if not data:
                    raise SessionClosed("the service closed the session")
                for event in self.state.feed(data, fds):
                    self._dispatch(event)
        except asyncio.CancelledError:
            raise
        except ShmBridgeError as exc:
            self._fail(exc)
        except OSError as exc:
            self._fail(SessionClosed(f"reading from the service failed: {exc}"))

    def _dispatch(self, event: p.Event) -> None:
        rid = event.request_id
        if isinstance(event, p.Bye):
            self._fail(SessionClosed(f"the service ended the session: {event.reason}"))
            return
        if isinstance(event, p.Error) and rid == 0:
            self._fail(error_of(event))  # type: ignore[arg-type]
            return
        if self.state.ledger.late_reply(rid):  # its slot is free again; nobody waits for it
            self._freed.set()
            return
        future = self._waiters.get(rid)
        if future is not None and not future.done():
            future.set_result(event)

    def _fail(self, error: ShmBridgeError) -> None:
        if self._broken is None:
            self._broken = error
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)
        self._freed.set()

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise self._broken
