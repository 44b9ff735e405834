"""One shared-memory session: a client connection served by its own thread, speaking ``protocol``.

The listener (``listener.SessionServer``) accepts on the service's asyncio loop; each connection gets a
``Session`` whose thread reads with a plain blocking ``recv`` and answers non-blocking engines (null) right
there. Why a thread and not an ``asyncio.Protocol``: a request is a 20-byte header and a small struct, and
what it costs is wake-ups and interpreter work, not bytes, and the selector loop's own round (epoll,
handles, callbacks) cost as much again as the whole blocking-socket ping-pong (ARCHITECTURE.md, decision
3). A session's pixels never cross the socket. What this module guarantees:

- each peer's uid/gid is checked before anything else;
- a connection must deliver its whole HELLO within ``request_timeout`` of being accepted (a deadline, not
  an idle timeout per read), in at most ``_HELLO_BYTES``;
- a frame error that loses the stream ends the session with an ERROR frame and a logged reason; an error
  in one request answers that request and the session goes on;
- on EOF (a client died or left) in-flight work is finished (or cancelled after ``drain_timeout``), then
  every segment is unmapped and closed (``ending``), so the kernel frees the pages: a dead client leaks
  nothing.

Threads and locks: the session thread alone reads the socket and decodes frames; frames go out through
the session's ``SessionWriter`` (``writer``), each whole. Requests for blocking engines go to the loop
(``ServiceCore.process``: admission, timeouts), so the admission semaphore stays an asyncio one and is
never held while writing to a socket. It must never copy pixels.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import wire
from ...errors import ErrorCode, PeerRejected, ProtocolError, RequestTimeout, ServiceUnavailable, ShmBridgeError
from ...models import OcrOptions, PixelFormat
from ...unixsock import peer_credentials, set_recv_timeout
from ..streaming import StreamOwner
from ..waiting import wait_until
from .ending import drain_requests, release_memory
from .frames import error_frame, event_frame, result_frame

if TYPE_CHECKING:
    from .listener import SessionServer
    from .place import SessionPlace
    from .writer import SessionWriter

log = logging.getLogger("shmbridge.session")

_RECV = 64 * 1024  # control frames are small; one read takes many pipelined requests
_SESSION_WAIT = 0.2  # seconds a HELLO waits for a session that is ending to give its place back
_LINGER = 1.0  # seconds a refused peer may still read the reason before the socket closes
_HELLO_BYTES = 16 * 1024  # what a connection may send before its WELCOME: a HELLO is a few dozen bytes
_UNWELCOMED = frozenset({wire.State.AWAIT_HELLO, wire.State.AWAIT_WELCOME})  # before WELCOME went out


@dataclass(slots=True)
class SessionFlags:
    """How far a session is from its end. Each is set once, on the loop, and read by the session thread
    between reads (plain attribute stores: no lock)."""

    shed: ShmBridgeError | None = None  # why the listener shed it before its WELCOME
    closing: str | None = None  # why the service ends it (shutdown); its BYE carries this
    finishing: bool = False  # the wind-down has begun: a backpressure wait ends


class Session:
    """One client connection: its protocol state, its memory, its in-flight requests, and its thread.

    The session thread reads and decodes frames. With a non-blocking engine (null) a request is answered
    on that thread before the next read: no task, no future, no thread hop. Blocking engines get one
    coroutine per request on the loop, bounded by the core's admission. Ending always goes through the
    loop (``_finish``), which waits for the thread to end before it unmaps anything.
    """

    def __init__(self, server: SessionServer, sock: socket.socket) -> None:
        self.server = server
        self.core = server.core
        self._config = config = server.config
        # Blocking, reads without a timeout (one recv per read, no readiness wait first); writes time out in the
        # kernel after request_timeout (SO_SNDTIMEO): a peer that stops reading is cut off.
        self.sock = sock
        self.id = uuid.uuid4().hex[:12]
        self.stream_owner = StreamOwner("session", self.id)  # its screen streams end with it
        self.conn = wire.Connection(wire.Role.SERVICE, config.max_control_frame)
        self.memory = server.new_memory()
        self._hello_deadline = time.monotonic() + config.request_timeout  # from accept, not from the last byte
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name=f"session-{self.id}", daemon=True)
        self.writer: SessionWriter = server.new_writer(sock, self.id)
        self.place: SessionPlace = server.new_place()
        self.flags = SessionFlags()
        self._pending: set[concurrent.futures.Future[None]] = set()  # blocking-engine requests on the loop
        self.finished: asyncio.Future[None] = self._loop.create_future()

    def start(self) -> None:
        """Called on the loop, once the listener has registered the session: start its thread."""
        self._thread.start()

    def shed(self, reason: ShmBridgeError) -> None:
        """Called on the loop: end a connection that is still waiting for its WELCOME, telling it why.
        Before WELCOME the service has written nothing, so this small write cannot block."""
        if self.conn.state not in _UNWELCOMED:  # welcomed meanwhile (it settles before WELCOME)
            return
        self.flags.shed = reason
        log.info("session %s: %s: %s", self.id, reason.code.name, reason.message)
        self._send(error_frame(self.conn, 0, reason))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # -- the session thread ------------------------------------------------------------------------

    def _serve(self) -> None:
        reason = "connection closed"
        try:
            reason = self._read_frames()
        except Exception:  # a bug must end this session, not leave it half-alive
            log.exception("session %s: unexpected error", self.id)
            reason = "internal error"
        finally:
            self.server.settle(self)
            self.place.give_back()
            with contextlib.suppress(RuntimeError):  # the loop is already closed: the service is gone
                self._loop.call_soon_threadsafe(self._finish, self.flags.closing or reason)

    def _read_frames(self) -> str:
        """Read, decode and answer until the session ends; return why it ended."""
        peer = peer_credentials(self.sock)
        if not self.server.peer_allowed(peer):
            config = self._config
            return self._fatal(
                PeerRejected(
                    f"uid {peer.uid} gid {peer.gid} may not use this service "
                    f"(allowed uids {config.allowed_uids}, gids {config.allowed_gids})"
                )
            )
        ended = self._read_hello()
        if ended is not None:
            return ended
        recv = self.sock.recv
        frame_read = self.server.frame_read
        while True:
            try:
                data = recv(_RECV)  # an idle session waits here until data, EOF or a shutdown
            except OSError as exc:
                return f"connection lost: {exc}"
            if data:  # a frame is coming in: keep idle CPUs ready for the next (the low-latency hold)
                frame_read()
            self.conn.receive_data(data)
            ended = self._drain_events()  # on EOF a frame cut off is logged as TRUNCATED
            if ended is not None:
                return ended
            if not data:
                return "client closed the connection"

    def _read_hello(self) -> str | None:
        """Read until WELCOME went out; return a reason when the session must end first.

        The whole HELLO must arrive within ``request_timeout`` of the accept: each read waits (a kernel
        receive timeout, ``SO_RCVTIMEO``) only for what is left of that deadline, so a peer sending one
        byte now and then is cut off on time. It may send at most ``_HELLO_BYTES`` before its WELCOME."""
        timeout = self._config.request_timeout
        while self.conn.state in _UNWELCOMED:
            remaining = self._hello_deadline - time.monotonic()
            if remaining <= 0:
                return self._fatal(RequestTimeout(f"no whole HELLO within {timeout}s of connecting"))
            try:
                set_recv_timeout(self.sock, remaining)
                data = self.sock.recv(_HELLO_BYTES)
            except BlockingIOError:  # the deadline passed inside the read
                return self._fatal(RequestTimeout(f"no whole HELLO within {timeout}s of connecting"))
            except OSError as exc:
                return f"connection lost: {exc}"
            shed = self.flags.shed
            if shed is not None:
                return f"{shed.code.name}: {shed.message}"
            self.conn.receive_data(data)
            ended = self._drain_events()
            if ended is not None:
                return ended
            if not data:
                return "client closed the connection"
            if self.conn.state in _UNWELCOMED and self.conn.decoder.pending > _HELLO_BYTES:
                return self._fatal(ProtocolError(f"more than {_HELLO_BYTES} bytes without a whole HELLO",
                                                 code=ErrorCode.FRAME_TOO_LARGE))  # fmt: skip
        with contextlib.suppress(OSError):
            set_recv_timeout(self.sock, 0)  # from here on an idle session may stay idle
        return None

    def _drain_events(self) -> str | None:
        """Handle every whole frame received; return a reason when the session must end."""
        while True:
            try:
                event = self.conn.next_event()
            except ProtocolError as exc:
                if exc.request_id is None:
                    return self._fatal(exc)
                self._write_error(exc.request_id, exc)
                continue
            except ShmBridgeError as exc:
                return self._fatal(exc)
            if event is None:
                return None
            try:
                if isinstance(event, wire.OcrRequest):
                    self._on_ocr(event)
                elif isinstance(event, wire.Alloc):
                    self._on_alloc(event)
                elif isinstance(event, wire.Hello):
                    self._on_hello(event)
                elif isinstance(event, wire.Bye):
                    return f"client said bye: {event.reason}" if event.reason else "client said bye"
            except ShmBridgeError as exc:  # connection-level: HELLO refused (limit, version)
                return self._fatal(exc)

    def _on_hello(self, event: wire.Hello) -> None:
        version = wire.negotiate(event.versions)
        # SessionLimitExceeded ends the session with a clear code, after a short wait for a place.
        self.place.take(wait=_SESSION_WAIT)
        welcome = self.server.welcome(event.request_id, version, self.id)
        self.server.settle(self)  # before WELCOME goes out, so a welcomed session is never shed
        self._send(self.conn.send(welcome))  # requests may flow from here on

    def _on_alloc(self, event: wire.Alloc) -> None:
        try:
            slots = event.slots or self._config.slots_per_segment
            segment = self.server.allocate(self.memory, event.frame_bytes, slots)
        except ShmBridgeError as exc:
            self._write_error(event.request_id, exc)
            return
        except (RuntimeError, concurrent.futures.CancelledError):  # the allocator is shut down
            self._write_error(event.request_id, ServiceUnavailable("the service is shutting down",
                                                                   code=ErrorCode.SHUTTING_DOWN))  # fmt: skip
            return
        frame = event_frame(self.conn, wire.SegmentGranted(event.request_id, segment.id, segment.slot_size,
                                                           segment.slot_count))  # fmt: skip
        self._send(frame, segment.fd)
        segment.drop_fd()  # the client has its own now; the mapping keeps the service's: one fd per segment

    def _on_ocr(self, event: wire.OcrRequest) -> None:
        try:
            options = wire.options_of(event)
            segment = self.memory.segment(event.segment)
            view = segment.image_view(event.slot, event.offset, event.height, event.width, event.channels, event.pitch)
            self.memory.lend(event.segment, event.slot)
        except ShmBridgeError as exc:
            self._write_error(event.request_id, exc)
            return
        fmt: PixelFormat = event.pixel_format  # type: ignore[assignment]  # decoding yields members
        if not self.core.inline:
            self.writer.wait_for_room(self._is_finishing)
            coro = self._ocr_in_pool(event, view, fmt, options)
            try:
                future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            except RuntimeError:  # the loop is closed: the service is going away
                coro.close()
                self.memory.give_back(event.segment, event.slot)
                self._write_error(event.request_id, ServiceUnavailable("the service is shutting down",
                                                                       code=ErrorCode.SHUTTING_DOWN))  # fmt: skip
                return
            self._pending.add(future)
            future.add_done_callback(self._pending_done)
            return
        # Microseconds and never blocks: answer right here, on this session's thread.
        try:
            result = self.core.process_inline(view, fmt, options, mode="shm_session", request_id=str(event.request_id),
                                              stream_owner=self.stream_owner)  # fmt: skip
        except ShmBridgeError as exc:
            self._write_error(event.request_id, exc)
        else:
            self._send(result_frame(self.conn, event.request_id, result))
        finally:
            del view
            self.memory.give_back(event.segment, event.slot)

    def _fatal(self, exc: ShmBridgeError) -> str:
        """Answer an error that loses the stream, half-close, and linger a moment before the session ends.

        The half-close and the linger let a client that is still writing (its HELLO, say) read the reason
        instead of hitting a broken pipe."""
        log.info("session %s: %s: %s", self.id, exc.code.name, exc.message)
        self._send(error_frame(self.conn, getattr(exc, "request_id", None) or 0, exc))
        deadline = time.monotonic() + _LINGER
        with contextlib.suppress(OSError):  # TimeoutError included: the linger is over
            self.sock.shutdown(socket.SHUT_WR)
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                if not self.sock.recv(_RECV):
                    break
        return f"{exc.code.name}: {exc.message}"

    def _write_error(self, request_id: int, exc: ShmBridgeError) -> None:
        self._send(error_frame(self.conn, request_id, exc))

    def _send(self, frame: bytes | None, fd: int | None = None) -> None:
        """Write ``frame`` now, unless the service has said its last word (no frame: nothing goes out)."""
        if frame is not None:
            self.writer.send(frame, fd)

    def _post(self, frame: bytes | None) -> None:
        """Queue ``frame`` for the writer job, unless the service has said its last word."""
        if frame is not None:
            self.writer.post(frame)

    def _is_finishing(self) -> bool:
        return self.flags.finishing

    # -- on the loop: blocking engines ---------------------------------------------------------------

    async def _ocr_in_pool(self, event: wire.OcrRequest, view: Any, fmt: PixelFormat, options: OcrOptions) -> None:
        segment_id, slot = event.segment, event.slot
        try:
            result = await self.core.process(
                view,
                fmt,
                options,
                mode="shm_session",
                request_id=str(event.request_id),
                on_release=lambda: self.memory.give_back(segment_id, slot),
                stream_owner=self.stream_owner,
            )
        except ShmBridgeError as exc:
            frame = error_frame(self.conn, event.request_id, exc)
        else:
            frame = result_frame(self.conn, event.request_id, result)
        del view
        self._post(frame)  # written by the session's writer job: a slow reader must not stall the loop

    def _pending_done(self, future: concurrent.futures.Future[None]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("session %s: request failed", self.id, exc_info=future.exception())

    # -- ending (on the loop) ------------------------------------------------------------------------

    def request_close(self, reason: str) -> None:
        """Service shutdown: read nothing new (the half-close wakes the session thread), finish in-flight
        work, say BYE."""
        self.flags.closing = reason
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.flags.finishing:
            return
        self.flags.finishing = True
        self._loop.create_task(self._wind_down(reason), name=f"session-{self.id}-end")

    async def _wind_down(self, reason: str) -> None:
        """Let the thread end, finish or cancel in-flight work, then release every mapping. Never raises."""
        log.debug("session %s ends: %s", self.id, reason)  # housekeeping: one per session
        config = self._config
        try:
            if self._thread.is_alive():  # a half-close ends its read at once; a notify ends a backpressure wait
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RD)
                self.writer.wake()
                await wait_until(lambda: not self._thread.is_alive(), config.request_timeout + _LINGER)
            await drain_requests(self._pending, config.drain_timeout)
            if self.flags.closing:
                self._post(event_frame(self.conn, wire.Bye(0, self.flags.closing)))
            await wait_until(self.writer.idle, _LINGER)  # replies and BYE already queued get a moment to go out
        finally:
            self.writer.close()
            self.server.forget(self)
            await release_memory(self.memory, self.id, config.engine_timeout)
            self.place.give_back()  # done by the thread already, unless it never ended
            if not self.finished.done():
                self.finished.set_result(None)
