"""The shared-memory session server: an asyncio Unix-socket server speaking ``protocol``.

One ``asyncio.Protocol`` per connection. A session owns its segments (``memory.SessionMemory``); the pixels never cross
the socket, only a 20-byte header and a small struct do. What this module guarantees:

- the socket's directory is 0770 or stricter, and each peer's uid/gid is checked before anything else;
- a frame error that loses the stream ends the session with an ERROR frame and a logged reason; an error
  in one request answers that request and the session goes on;
- on EOF (a client died or left) in-flight work is finished (or cancelled after ``drain_timeout``), then
  every segment is unmapped and closed, so the kernel frees the pages: a dead client leaks nothing.

No locks here: everything runs on the event loop, and frames stay whole because every write but one goes
through the transport, and the one that cannot (a descriptor with SCM_RIGHTS) waits for the transport's
buffer to be empty first. The core's admission semaphore is never held while writing to a socket.
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
from ..unixsock import PeerCredentials, peer_credentials, prepare_socket_path, wait_writable
from .core import ServiceCore

log = logging.getLogger("shmbridge.session")


class SessionServer:
    """Listens on ``config.socket_path`` and runs one ``Session`` per connection."""

    def __init__(self, core: ServiceCore, budget: MemoryBudget | None = None) -> None:
        self.core = core
        self.config: ServiceConfig = core.config
        self.budget = budget or MemoryBudget(self.config.total_bytes, self.config.max_sessions)
        self.sessions: set[Session] = set()
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self.socket_path: Path = self.config.socket_path
        # Read at scrape time instead of counted per request (two gauge updates less on the hot path).
        core.metrics.slots_in_use.set_function(self.slots_in_use)

    def slots_in_use(self) -> int:
        return sum(session.memory.slots_in_use for session in list(self.sessions))

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
            try:
                await loop.connect_accepted_socket(lambda conn=conn: Session(self, conn), sock=conn)
            except OSError as exc:
                log.warning("could not start a session: %s", exc)
                conn.close()

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
        sessions = list(self.sessions)
        for session in sessions:
            session.request_close("the service is shutting down")
        if sessions:
            await asyncio.wait([s.finished for s in sessions], timeout=timeout + 2.0)

    def status(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "slots_in_use": self.slots_in_use(),
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


class Session(asyncio.Protocol):
    """One client connection: its protocol state, its memory, and its in-flight requests.

    An ``asyncio.Protocol``: frames are decoded in ``data_received``, straight from the selector callback.
    With a non-blocking engine (null) a request is answered before ``data_received`` returns: no task,
    no future, no thread hop. Blocking engines get one task per request, bounded by the core's admission.
    """

    def __init__(self, server: SessionServer, sock: socket.socket) -> None:
        self.server = server
        self.core = server.core
        self.sock = sock  # kept for SCM_RIGHTS; every other write goes through the transport
        self.id = uuid.uuid4().hex[:12]
        self.conn = p.ServerConnection(server.config.max_control_frame)
        self.memory = SessionMemory(server.budget, server.config.session_bytes, server.config.max_frame_bytes)
        self.metrics = self.core.metrics
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._opened = False
        self._closing: str | None = None
        self._dead = False  # a fatal error was answered; input is discarded from here on
        self.finished: asyncio.Future[None] = self._loop.create_future()
        self._finishing = False

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.sessions.add(self)
        peer = peer_credentials(self.sock)
        if not self.server.peer_allowed(peer):
            config = self.server.config
            self._fatal(
                PeerRejected(
                    f"uid {peer.uid} gid {peer.gid} may not use this service "
                    f"(allowed uids {config.allowed_uids}, gids {config.allowed_gids})"
                )
            )

    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        self.conn.receive_data(data)
        self._drain_events()

    def eof_received(self) -> bool:
        if not self._dead:
            self.conn.receive_data(b"")
            self._drain_events()  # a frame cut off by EOF is logged as TRUNCATED
        self._finish("client closed the connection")
        return True  # keep the transport: in-flight work finishes before it closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost: {exc}" if exc else "connection closed")

    # -- frames in ---------------------------------------------------------------------------------

    def _drain_events(self) -> None:
        while not self._dead:
            try:
                event = self.conn.next_event()
            except ProtocolError as exc:
                if exc.request_id is None:
                    self._fatal(exc)
                    return
                self._write_error(exc.request_id, exc)
                continue
            except ShmBridgeError as exc:
                self._fatal(exc)
                return
            if event is None:
                return
            try:
                self._handle(event)
            except ShmBridgeError as exc:  # connection-level: HELLO refused (limit, version)
                self._fatal(exc)
                return

    def _handle(self, event: p.Event) -> None:
        if isinstance(event, p.OcrRequest):
            self._on_ocr(event)
        elif isinstance(event, p.Alloc):
            self._on_alloc(event)
        elif isinstance(event, p.Hello):
            self._on_hello(event)
        elif isinstance(event, p.Bye):
            self._finish(f"client said bye: {event.reason}" if event.reason else "client said bye")

    def _on_hello(self, event: p.Hello) -> None:
        version = p.negotiate(event.versions)
        self.server.budget.open_session()  # SessionLimitExceeded ends the session with a clear code
        self._opened = True
        self.metrics.sessions.inc()
        welcome = p.Welcome(
            event.request_id, version, self.id, limits=self.server.limits(), engine=self.core.pool.capabilities()
        )
        self._write(p.encode(welcome))
        self.conn.welcomed()

    def _on_alloc(self, event: p.Alloc) -> None:
        try:
            segment = self.memory.allocate(event.frame_bytes, event.slots or self.server.config.slots_per_segment)
        except ShmBridgeError as exc:
            self._write_error(event.request_id, exc)
            return
        self.metrics.bytes_mapped.set(self.server.budget.used_bytes)
        frame = p.encode(p.SegmentGranted(event.request_id, segment.id, segment.slot_size, segment.slot_count))
        self._spawn(self._send_with_fd(frame, segment.fd))

    def _on_ocr(self, event: p.OcrRequest) -> None:
        try:
            options = _options(event)
            segment = self.memory.segment(event.segment)
            view = segment.image_view(event.slot, event.offset, event.height, event.width, event.channels, event.pitch)
            self.memory.lend(event.segment, event.slot)
        except ShmBridgeError as exc:
            self._write_error(event.request_id, exc)
            return
        fmt = PixelFormat(event.pixel_format)
        if not self.core.inline:
            self._spawn(self._ocr_in_pool(event, view, fmt, options))
            return
        # Microseconds and never blocks: answer right here.
        try:
            result = self.core.process_inline(view, fmt, options, mode="shm_session", request_id=str(event.request_id))
        except ShmBridgeError as exc:
            self._write_error(event.request_id, exc)
        else:
            self._write(p.encode_result_json(event.request_id, result.model_dump_json().encode()))
        finally:
            del view
            self._give_back(event.segment, event.slot)

    async def _ocr_in_pool(self, event: p.OcrRequest, view: Any, fmt: PixelFormat, options: OcrOptions) -> None:
        segment_id, slot = event.segment, event.slot
        try:
            result = await self.core.process(
                view,
                fmt,
                options,
                mode="shm_session",
                request_id=str(event.request_id),
                on_release=lambda: self._give_back(segment_id, slot),
            )
        except ShmBridgeError as exc:
            del view
            self._write_error(event.request_id, exc)
            return
        del view
        self._write(p.encode_result_json(event.request_id, result.model_dump_json().encode()))

    def _give_back(self, segment_id: int, slot: int) -> None:
        self.memory.give_back(segment_id, slot)

    # -- frames out --------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Queue one whole frame. The transport keeps frames whole and in order; after EOF it drops them."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _write_error(self, request_id: int, exc: ShmBridgeError) -> None:
        self._write(p.encode(p.Error(request_id, exc.code, exc.message, getattr(exc, "retry_after", None))))

    async def _send_with_fd(self, frame: bytes, fd: int) -> None:
        """SCM_RIGHTS goes around the transport: wait until its buffer is empty so frames stay whole."""
        transport = self.transport
        deadline = time.monotonic() + self.server.config.request_timeout
        while transport is not None and transport.get_write_buffer_size():
            if transport.is_closing() or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.001)
        if transport is None or transport.is_closing():
            return
        while True:
            try:
                sent = socket.send_fds(self.sock, [frame], [fd])
                break
            except BlockingIOError:
                await wait_writable(self._loop, self.sock)
            except OSError as exc:
                log.info("session %s: could not pass a segment: %s", self.id, exc)
                return
        if sent < len(frame):
            transport.write(frame[sent:])  # no await since send_fds: nothing slipped in between

    # -- ending ------------------------------------------------------------------------------------

    def _fatal(self, exc: ShmBridgeError) -> None:
        """Answer an error that loses the stream, then end the session after a short linger.

        The half-close lets a client that is still writing (its HELLO, say) read the reason instead of
        hitting a broken pipe."""
        log.info("session %s: %s: %s", self.id, exc.code.name, exc.message)
        self._dead = True
        self._write(p.encode(p.Error(getattr(exc, "request_id", None) or 0, exc.code, exc.message)))
        transport = self.transport
        if transport is not None and transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()
        self._loop.call_later(1.0, self._finish, f"{exc.code.name}: {exc.message}")

    def request_close(self, reason: str) -> None:
        """Service shutdown: read nothing new, finish in-flight work, say BYE."""
        self._closing = reason
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._finish(reason)

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s: request task failed", self.id, exc_info=task.exception())

    def _finish(self, reason: str) -> None:
        if self._finishing:
            return
        self._finishing = True
        self._loop.create_task(self._wind_down(reason), name=f"session-{self.id}-end")

    async def _wind_down(self, reason: str) -> None:
        """Finish or cancel in-flight work, then release every mapping. Never raises."""
        log.info("session %s ends: %s", self.id, reason)
        try:
            if self._tasks:
                _done, pending = await asyncio.wait(set(self._tasks), timeout=self.server.config.drain_timeout)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=1.0)
            if self._closing:
                self._write(p.encode(p.Bye(0, self._closing)))
        finally:
            if self.transport is not None:
                self.transport.close()
            self.server.sessions.discard(self)
            await self._release_memory()
            if self._opened:
                self.server.budget.close_session()
                self.metrics.sessions.dec()
            if not self.finished.done():
                self.finished.set_result(None)

    async def _release_memory(self) -> None:
        """Unmap once no engine thread reads a slot; a timed-out engine thread is waited for."""
        deadline = time.monotonic() + self.server.config.engine_timeout + 5.0
        while self.memory.slots_in_use and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        lent = self.memory.slots_in_use
        if lent:
            log.error("session %s: %d slot(s) still lent after the engine timeout; unmapping anyway", self.id, lent)
        released = self.memory.used_bytes
        try:
            self.memory.close()
        except BufferError:
            gc.collect()  # a traceback may still hold a view
            try:
                self.memory.close()
            except BufferError:
                log.error("session %s: a view of its memory is still referenced; mapping kept", self.id)
        self.metrics.bytes_mapped.set(self.server.budget.used_bytes)
        log.info("session %s released %d bytes of shared memory", self.id, released)


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
