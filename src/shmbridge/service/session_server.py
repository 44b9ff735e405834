"""The shared-memory session server: an asyncio Unix-socket server speaking ``protocol``.

One task per connection. A session owns its segments (``memory.SessionMemory``); the pixels never cross
the socket, only a 20-byte header and a small struct do. What this module guarantees:

- the socket's directory is 0770 or stricter, and each peer's uid/gid is checked before anything else;
- a frame error that loses the stream ends the session with an ERROR frame and a logged reason; an error
  in one request answers that request and the session goes on;
- on EOF (a client died or left) in-flight work is finished (or cancelled after ``drain_timeout``), then
  every segment is unmapped and closed, so the kernel frees the pages: a dead client leaks nothing.

Lock order (see ARCHITECTURE.md): a session's ``_write_lock`` is the only lock here and is never held
while waiting on the core; the core's admission semaphore is never held while writing to a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import protocol as p
from ..config import ServiceConfig
from ..errors import ErrorCode, InvalidRequest, PeerRejected, ProtocolError, ShmBridgeError
from ..memory import MemoryBudget, SessionMemory
from ..models import DEFAULT_OPTIONS, OcrOptions, PixelFormat, Roi
from ..unixsock import PeerCredentials, peer_credentials, prepare_socket_path, send_fds_async
from .core import ServiceCore

log = logging.getLogger("shmbridge.session")
_RECV_SIZE = 32 * 1024


class SessionServer:
    """Listens on ``config.socket_path`` and runs one ``Session`` per connection."""

    def __init__(self, core: ServiceCore, budget: MemoryBudget | None = None) -> None:
        self.core = core
        self.config: ServiceConfig = core.config
        self.budget = budget or MemoryBudget(self.config.total_bytes, self.config.max_sessions)
        self.sessions: set[Session] = set()
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.socket_path: Path = self.config.socket_path

    async def start(self) -> None:
        prepare_socket_path(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.socket_path))
            os.chmod(self.socket_path, 0o660)
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop(), name="shm-accept")
        log.info("session server listening on %s", self.socket_path)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            session = Session(self, conn)
            task = loop.create_task(session.run(), name=f"session-{session.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self, timeout: float) -> None:
        """Stop accepting, let sessions finish their in-flight work within ``timeout``, remove the socket."""
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        for session in list(self.sessions):
            session.request_close("the service is shutting down")
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    def status(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "slots_in_use": sum(s.memory.slots_in_use for s in self.sessions),
            "bytes_mapped": self.budget.used_bytes,
            "socket_path": str(self.socket_path),
        }

    def limits(self) -> dict[str, Any]:
        c = self.config
        return {
            "max_frame_bytes": c.max_frame_bytes,
            "max_pixels": c.max_pixels,
            "session_bytes": c.session_bytes,
            "slots_per_segment": c.slots_per_segment,
            "max_control_frame": c.max_control_frame,
            "max_in_flight": c.in_flight_limit,
            "request_timeout": c.request_timeout,
        }

    def peer_allowed(self, peer: PeerCredentials) -> bool:
        return peer.uid in self.config.allowed_uids or peer.gid in self.config.allowed_gids


class Session:
    """One client connection: its protocol state, its memory, and its in-flight requests."""

    def __init__(self, server: SessionServer, sock: socket.socket) -> None:
        self.server = server
        self.core = server.core
        self.sock = sock
        self.id = uuid.uuid4().hex[:12]
        self.conn = p.ServerConnection(server.config.max_control_frame)
        self.memory = SessionMemory(server.budget, server.config.session_bytes, server.config.max_frame_bytes)
        self.metrics = self.core.metrics
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._opened = False
        self._closing: str | None = None
        self._loop = asyncio.get_running_loop()

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        reason = "client closed the connection"
        try:
            peer = peer_credentials(self.sock)
            if not self.server.peer_allowed(peer):
                raise PeerRejected(
                    f"uid {peer.uid} gid {peer.gid} may not use this service "
                    f"(allowed uids {self.server.config.allowed_uids}, gids {self.server.config.allowed_gids})"
                )
            self.server.sessions.add(self)
            reason = await self._read_loop()
        except ShmBridgeError as exc:
            reason = f"{exc.code.name}: {exc.message}"
            with contextlib.suppress(OSError):
                await self._send(p.encode(p.Error(getattr(exc, "request_id", None) or 0, exc.code, exc.message)))
                await self._linger()
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc}"
        finally:
            await self._finish(reason)

    def request_close(self, reason: str) -> None:
        """Ask the session to end after its in-flight work (service shutdown)."""
        self._closing = reason
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)  # wakes the reader with EOF

    async def _read_loop(self) -> str:
        loop = self._loop
        while True:
            data = await loop.sock_recv(self.sock, _RECV_SIZE)
            self.conn.receive_data(data)
            while True:
                try:
                    event = self.conn.next_event()
                except ProtocolError as exc:
                    if exc.request_id is None:
                        raise
                    await self._send_error(exc.request_id, exc)
                    continue
                if event is None:
                    break
                if isinstance(event, p.Bye):
                    return f"client said bye: {event.reason}" if event.reason else "client said bye"
                await self._handle(event)
            if not data:
                return self._closing or "client closed the connection"

    async def _linger(self, timeout: float = 1.0) -> None:
        """After a fatal error frame, half-close and discard input briefly, so a client that is still
        writing (its HELLO, say) gets to read the reason instead of a broken pipe."""
        self.sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError):
            while time.monotonic() < deadline:
                data = await asyncio.wait_for(self._loop.sock_recv(self.sock, _RECV_SIZE), deadline - time.monotonic())
                if not data:
                    return

    async def _finish(self, reason: str) -> None:
        """Finish or cancel in-flight work, then release every mapping. Never raises."""
        log.info("session %s ends: %s", self.id, reason)
        try:
            if self._tasks:
                _done, pending = await asyncio.wait(self._tasks, timeout=self.server.config.drain_timeout)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)
            if self._closing:
                with contextlib.suppress(OSError):
                    await self._send(p.encode(p.Bye(0, self._closing)))
        finally:
            self.sock.close()
            self.server.sessions.discard(self)
            await self._release_memory()
            if self._opened:
                self.server.budget.close_session()
                self.metrics.sessions.dec()

    async def _release_memory(self) -> None:
        """Unmap once no engine thread reads a slot; a timed-out engine thread is waited for."""
        deadline = time.monotonic() + self.server.config.engine_timeout + 5.0
        while self.memory.slots_in_use and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        lent = self.memory.slots_in_use
        if lent:
            log.error("session %s: %d slot(s) still lent after the engine timeout; unmapping anyway", self.id, lent)
            self.metrics.slots_in_use.dec(lent)
        released = self.memory.used_bytes
        try:
            self.memory.close()
        except BufferError:
            gc.collect()  # a traceback may still hold a view; the mapping goes when the last view does
            try:
                self.memory.close()
            except BufferError:
                log.error("session %s: a view of its memory is still referenced; mapping kept", self.id)
        self.metrics.bytes_mapped.set(self.server.budget.used_bytes)
        log.info("session %s released %d bytes of shared memory", self.id, released)

    # -- events ------------------------------------------------------------------------------------

    async def _handle(self, event: p.Event) -> None:
        if isinstance(event, p.OcrRequest):
            await self._on_ocr(event)
        elif isinstance(event, p.Alloc):
            await self._on_alloc(event)
        elif isinstance(event, p.Hello):
            await self._on_hello(event)

    async def _on_hello(self, event: p.Hello) -> None:
        version = p.negotiate(event.versions)
        self.server.budget.open_session()  # SessionLimitExceeded ends the session with a clear code
        self._opened = True
        self.metrics.sessions.inc()
        welcome = p.Welcome(
            event.request_id,
            version,
            self.id,
            limits=self.server.limits(),
            engine=self.core.pool.capabilities(),
        )
        await self._send(p.encode(welcome))
        self.conn.welcomed()

    async def _on_alloc(self, event: p.Alloc) -> None:
        try:
            segment = self.memory.allocate(event.frame_bytes, event.slots or self.server.config.slots_per_segment)
        except ShmBridgeError as exc:
            await self._send_error(event.request_id, exc)
            return
        self.metrics.bytes_mapped.set(self.server.budget.used_bytes)
        granted = p.SegmentGranted(event.request_id, segment.id, segment.slot_size, segment.slot_count)
        async with self._write_lock:
            await send_fds_async(self._loop, self.sock, p.encode(granted), [segment.fd])

    async def _on_ocr(self, event: p.OcrRequest) -> None:
        try:
            options = _options(event)
            segment = self.memory.segment(event.segment)
            view = segment.image_view(event.slot, event.offset, event.height, event.width, event.channels,
                                      event.pitch)  # fmt: skip
            self.memory.lend(event.segment, event.slot)
        except ShmBridgeError as exc:
            await self._send_error(event.request_id, exc)
            return
        self.metrics.slots_in_use.inc()
        if self.core.pool.blocking:
            task = self._loop.create_task(self._ocr(event, view, options))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            await self._ocr(event, view, options)  # microseconds, never blocks: no task, no thread hop

    async def _ocr(self, event: p.OcrRequest, view: Any, options: OcrOptions) -> None:
        segment_id, slot = event.segment, event.slot

        def release() -> None:
            self.memory.give_back(segment_id, slot)
            self.metrics.slots_in_use.dec()

        try:
            result = await self.core.process(
                view,
                PixelFormat(event.pixel_format),
                options,
                mode="shm_session",
                request_id=str(event.request_id),
                on_release=release,
            )
        except ShmBridgeError as exc:
            del view
            await self._send_error(event.request_id, exc)
            return
        del view
        await self._send(p.encode(p.Result(event.request_id, result.model_dump(mode="json"))))

    # -- writing -------------------------------------------------------------------------------------

    async def _send_error(self, request_id: int, exc: ShmBridgeError) -> None:
        retry_after = getattr(exc, "retry_after", None)
        await self._send(p.encode(p.Error(request_id, exc.code, exc.message, retry_after)))

    async def _send(self, data: bytes) -> None:
        """Write one whole frame; frames from concurrent requests never interleave."""
        if not self._write_lock.locked():
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        async with self._write_lock:  # acquired without yielding when free: no frame can slip in between
            await self._loop.sock_sendall(self.sock, data)


def _options(event: p.OcrRequest) -> OcrOptions:
    """Request options as the shared model; unknown keys are an error, never ignored."""
    if not event.options and event.roi is None:
        return DEFAULT_OPTIONS
    fields: dict[str, Any] = dict(event.options)
    if "roi" in fields:
        raise InvalidRequest("the region of interest travels in the request struct, not in options",
                             code=ErrorCode.UNKNOWN_OPTION)  # fmt: skip
    try:
        if event.roi is not None:
            x, y, w, h = event.roi
            fields["roi"] = Roi(x=x, y=y, width=w, height=h)
        return OcrOptions(**fields)
    except ValidationError as exc:
        unknown = [".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "extra_forbidden"]
        if unknown:
            raise InvalidRequest(f"unknown option(s): {', '.join(unknown)}", code=ErrorCode.UNKNOWN_OPTION) from None
        raise InvalidRequest(f"invalid options: {exc.errors()[0]['msg']}") from None
