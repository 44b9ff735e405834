"""``AsyncSessionClient``: the asyncio low-level session (connect, handshake, lease slots, submit, wait).

One reader task reads the socket and resolves a future per request, so any number of requests are
pipelined on one socket; a caller that finds every slot lent waits on an event that ``release`` sets. That
waiting is all this module owns: what a session knows and decides is ``session_base.SessionBase``, shared
with the blocking twin ``session.SessionClient``. It must never block the event loop, and never decide
about fallback or reconnects (the high-level clients do).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator

import numpy as np

from .. import wire as p
from ..errors import RequestTimeout, SessionClosed, ShmBridgeError
from ..models import OcrOptions, OcrResult, PixelFormat
from ..unixsock import recv_with_fds, wait_readable
from .session_base import DEFAULT_TIMEOUT, RECV_BYTES, SessionBase, frame_bytes
from .slots import PARSE, ParseResult, SlotLease, copy_into, format_of


class AsyncSessionClient(SessionBase):
    """An asyncio session: one reader task, any number of requests pipelined on one socket."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(path, timeout)
        self._waiters: dict[int, asyncio.Future[p.Event]] = {}
        self._freed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._alloc_lock = asyncio.Lock()

    async def connect(self) -> AsyncSessionClient:
        """Connect and do the handshake (HELLO → WELCOME); starts the reader task."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, os.fspath(self.path)), self.timeout)
        except (OSError, TimeoutError) as exc:
            sock.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"no answer in {self.timeout}s"
            raise self._unreachable(reason) from exc
        self._sock = sock
        self._reader = loop.create_task(self._read_loop(), name="shmbridge-session-reader")
        try:
            rid, data = self.state.hello()
            self.state.welcomed(await self._request(rid, data, self.timeout))
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> AsyncSessionClient:
        return self if self._sock is not None else await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the reader, say BYE, close the socket and unmap every segment. Safe to call twice."""
        sock, self._sock = self._sock, None
        self._closing()
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
        """A slot of at least ``nbytes``: a free one, else a new segment, else the next one given back."""
        deadline = self._deadline(timeout)
        while True:
            found = self._free_or_wait(nbytes, deadline)
            if isinstance(found, SlotLease):
                return found
            if found is None:
                async with self._alloc_lock:
                    if not self.state.has_class_for(nbytes):
                        rid, data = self.state.alloc(nbytes)
                        self.state.granted(await self._request(rid, data, deadline - time.monotonic()))
                continue
            self._freed.clear()
            try:
                await asyncio.wait_for(self._freed.wait(), found)
            except TimeoutError:
                raise self._slot_timeout(nbytes) from None

    def release(self, lease: SlotLease) -> None:
        self.state.give_back(lease)
        self._freed.set()

    @contextlib.asynccontextmanager
    async def lease(
        self, height: int, width: int, channels: int = 3, timeout: float | None = None
    ) -> AsyncIterator[SlotLease]:
        """A slot big enough for one frame, returned to the pool when the block ends."""
        lease = await self.acquire(frame_bytes(height, width, channels), timeout)
        try:
            lease.frame(height, width, channels)
            yield lease
        finally:
            self._give_back(lease)

    # -- requests --------------------------------------------------------------------------------

    async def submit(self, lease: SlotLease, image: np.ndarray | None = None, *,
                     pixel_format: PixelFormat | str | None = None, options: OcrOptions | None = None,
                     timeout: float | None = None, parse: ParseResult = PARSE) -> OcrResult:  # fmt: skip
        """OCR pixels already written in ``lease`` (zero-copy). The lease stays the caller's afterwards.
        ``parse`` makes the result from the reply's fields (default: ``OcrResult.model_validate``)."""
        rid, data = self.state.submission(lease, image, pixel_format, options)
        try:
            reply = await self._request(rid, data, self.timeout if timeout is None else timeout)
        except RequestTimeout:
            self.state.abandon(rid, lease)  # the service may still read these pixels
            raise
        return self.state.result_of(reply, lease, parse)

    async def ocr_copy(self, image: np.ndarray, *, pixel_format: PixelFormat | str | None = None,
                       options: OcrOptions | None = None, timeout: float | None = None) -> OcrResult:  # fmt: skip
        """OCR any uint8 array by copying it into a slot once (the copying path, named as such)."""
        fmt = format_of(image, pixel_format)
        lease = await self.acquire(image.nbytes, timeout)
        try:
            target = self.state.engine_format(fmt)
            frame = copy_into(lease, image, fmt, target)
            return await self.submit(lease, frame, pixel_format=target, options=options, timeout=timeout)
        finally:
            self._give_back(lease)

    # -- waiting ---------------------------------------------------------------------------------------

    async def _request(self, rid: int, data: bytes, timeout: float) -> p.Event:
        """Send one request and wait up to ``timeout`` for the reader task to resolve its reply."""
        self._raise_if_broken()
        sock = self._sock
        if sock is None:
            raise SessionClosed("the session is not connected")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[p.Event] = loop.create_future()
        self._waiters[rid] = future
        try:
            try:
                await loop.sock_sendall(sock, data)
            except OSError as exc:
                raise self._send_failed(exc) from exc
            try:
                return await asyncio.wait_for(future, max(timeout, 0.0))
            except TimeoutError:
                raise self._reply_timeout(rid) from None
        finally:
            self._waiters.pop(rid, None)
            if future.done() and not future.cancelled():
                future.exception()  # a failure _fail() set on it is raised here already: mark it retrieved

    async def _read_loop(self) -> None:
        """The reader task: read, decode, dispatch, until the session breaks or is closed."""
        loop = asyncio.get_running_loop()
        sock = self._sock
        assert sock is not None
        try:
            while self._broken is None:
                await wait_readable(loop, sock)
                try:
                    data, fds = recv_with_fds(sock, RECV_BYTES)
                except BlockingIOError:
                    continue
                if not data:
                    self._closed_by_peer(fds)
                    return
                self._dispatch(self._feed(data, fds))
        except (OSError, ValueError) as exc:
            self._read_failed(exc)

    def _deliver(self, rid: int, event: p.Event) -> None:
        future = self._waiters.get(rid)
        if future is not None and not future.done():
            future.set_result(event)

    def _fail(self, error: ShmBridgeError) -> None:
        if self._broken is None:
            self._broken = error
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(self._broken)
        self._freed.set()
