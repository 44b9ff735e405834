"""The shared-memory session server: a Unix-socket server speaking ``wire``, one thread per session.

The listener runs on the service's asyncio loop; each accepted connection gets a ``Session`` served by its
own thread, which reads with a plain blocking ``recv`` and answers non-blocking engines (null) right there.
Why a thread and not an ``asyncio.Protocol``: a request is a 20-byte header and a small struct, and what it
costs is wake-ups and interpreter work, not bytes, and the selector loop's own round (epoll, handles,
callbacks) cost as much again as the whole blocking-socket ping-pong (ARCHITECTURE.md, decision 3). A
session's pixels never cross the socket. What this module guarantees:

- the socket's directory is 0770 or stricter, and each peer's uid/gid is checked before anything else;
- a connection must deliver its whole HELLO within ``request_timeout`` of being accepted (a deadline, not
  an idle timeout per read), in at most ``_HELLO_BYTES``; at most ``max_pending_connections`` wait for
  their WELCOME at once, and a new one sheds the oldest (``PendingConnections``);
- every descriptor a peer makes the service hold (its socket, one per segment) is taken from the
  service's ``FdBudget`` first, so a peer gets a typed error before the process runs out of fds;
- a frame error that loses the stream ends the session with an ERROR frame and a logged reason; an error
  in one request answers that request and the session goes on;
- on EOF (a client died or left) in-flight work is finished (or cancelled after ``drain_timeout``), then
  every segment is unmapped and closed, so the kernel frees the pages: a dead client leaks nothing.

Threads and locks: the session thread alone reads the socket and decodes frames. Frames are written by
the session thread (inline replies, WELCOME, segments with SCM_RIGHTS) and by the session's writer job
(replies of blocking engines, BYE), each whole under ``Session._send_lock``. Requests
for blocking engines go to the loop (``ServiceCore.process``: admission, timeouts), so the admission
semaphore stays an asyncio one and is never held while writing to a socket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from .. import wire as p
from ..config import ServiceConfig
from ..errors import (
    Busy,
    ErrorCode,
    PeerRejected,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
    SessionClosed,
    ShmBridgeError,
)
from ..memory import MemoryBudget, SessionMemory
from ..models import OcrOptions, OcrResult, PixelFormat
from ..unixsock import PeerCredentials, peer_credentials, prepare_socket_path, set_recv_timeout, set_send_timeout
from .core import ServiceCore
from .fd_budget import Descriptors
from .pending import PendingConnections
from .polling import wait_until
from .streaming import StreamOwner
from .wakeups import OFF_STATUS, CpuWakeupHold

log = logging.getLogger("shmbridge.session")

_RECV = 64 * 1024  # control frames are small; one read takes many pipelined requests
_SESSION_WAIT = 0.2  # seconds a HELLO waits for a session that is ending to give its place back
_OUTBOX_LIMIT = 64  # replies of blocking engines waiting to be written before a session stops reading
_LINGER = 1.0  # seconds a refused peer may still read the reason before the socket closes
_HELLO_BYTES = 16 * 1024  # what a connection may send before its WELCOME: a HELLO is a few dozen bytes
_UNWELCOMED = frozenset({p.State.AWAIT_HELLO, p.State.AWAIT_WELCOME})


class SessionServer:
    """Listens on ``config.socket_path`` and runs one ``Session`` per connection."""

    def __init__(self, core: ServiceCore, budget: MemoryBudget | None = None, fds: Descriptors | None = None) -> None:
        self.core = core
        self.config: ServiceConfig = core.config
        self.budget = budget or MemoryBudget(self.config.total_bytes, self.config.max_sessions)
        self.fds = fds or Descriptors.measured(self.config.max_sessions + self.config.max_pending_connections)
        self.pending: PendingConnections[Session] = PendingConnections(self.config.max_pending_connections)
        self.sessions: set[Session] = set()
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self.socket_path: Path = self.config.socket_path
        # Read at scrape time instead of counted per request (two gauge updates less on the hot path).
        core.metrics.slots_in_use.set_function(self.slots_in_use)
        core.metrics.bytes_mapped.set_function(lambda: self.budget.used_bytes)
        # Low-latency mode: every frame read keeps idle CPUs polling for a moment (service/wakeups.py).
        self.wakeups = CpuWakeupHold(self.config.low_latency_hold) if self.config.low_latency else None
        core.metrics.cpu_wakeup_hold.set_function(lambda: float(self.wakeups is not None and self.wakeups.held))
        # Writes that do not come from a session's own thread (replies of blocking engines, BYE). At most
        # one job per session at a time (``Session._post``), so a client that stops reading holds one
        # worker, never another session's replies.
        self.writers = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.max_sessions + 1, thread_name_prefix="session-write"
        )
        # Segments are created here, at a lower CPU priority than the session threads (``_on_alloc``).
        self.allocator = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="segment-alloc", initializer=_lower_priority
        )

    def slots_in_use(self) -> int:
        return sum(session.memory.slots_in_use for session in list(self.sessions))

    async def start(self) -> None:
        if self.wakeups is not None:
            self.wakeups.start()
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
            try:
                self.fds.connections.take("connection")
            except ShmBridgeError as exc:  # refused at once, from the reserve: a thread costs more than this
                with contextlib.suppress(OSError):
                    conn.send(p.encode(p.Error.of(0, exc)))
                conn.close()
                continue
            try:
                conn.setblocking(True)
                set_send_timeout(conn, self.config.request_timeout)
                session = Session(self, conn)
                session.start()
            except (OSError, RuntimeError) as exc:  # RuntimeError: no thread could be started
                log.warning("could not start a session: %s", exc)
                conn.close()
                self.fds.connections.give()
                continue
            oldest = self.pending.admit(session)
            if oldest is not None:
                oldest.shed(Busy(f"{self.pending.limit} connections are waiting for their WELCOME; the oldest "
                                 "was shed (send HELLO at once after connecting)"))  # fmt: skip

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
        self.writers.shutdown(wait=False, cancel_futures=True)
        self.allocator.shutdown(wait=False, cancel_futures=True)
        if self.wakeups is not None:
            self.wakeups.close()

    def status(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "slots_in_use": self.slots_in_use(),
            "bytes_mapped": self.budget.used_bytes,
            "socket_path": str(self.socket_path),
            "low_latency": self.low_latency_status(),
        }

    def low_latency_status(self) -> dict[str, Any]:
        return dict(OFF_STATUS) if self.wakeups is None else self.wakeups.status()

    def limits(self) -> dict[str, Any]:
        return p.welcome_limits(self.config)

    def peer_allowed(self, peer: PeerCredentials) -> bool:
        return peer.uid in self.config.allowed_uids or peer.gid in self.config.allowed_gids


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
        # Blocking, reads without a timeout (one recv per read, no poll first); writes time out in the
        # kernel after request_timeout (SO_SNDTIMEO): a peer that stops reading is cut off.
        self.sock = sock
        self.id = uuid.uuid4().hex[:12]
        self.stream_owner = StreamOwner("session", self.id)  # its screen streams end with it
        self.conn = p.Connection(p.Role.SERVICE, server.config.max_control_frame)
        config = server.config
        self.memory = SessionMemory(
            server.budget,
            config.session_bytes,
            config.max_frame_bytes,
            config.max_segments_per_session,
            server.fds.memory,
        )
        self._hello_deadline = time.monotonic() + config.request_timeout  # from accept, not from the last byte
        self.metrics = self.core.metrics
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name=f"session-{self.id}", daemon=True)
        self._send_lock = threading.Lock()
        self._connection_lost = False  # a write failed half-way: no frame may follow (guarded by _send_lock)
        self._outbox: deque[bytes] = deque()  # frames for the session's one writer job (guarded by _post_lock)
        self._writing = False
        self._post_lock = threading.Lock()
        self._outbox_room = threading.Condition(self._post_lock)  # notified as the writer job drains
        self._budget_lock = threading.Lock()  # guards _opened
        self._pending: set[concurrent.futures.Future[None]] = set()  # blocking-engine requests on the loop
        self._opened = False
        self._closing: str | None = None
        self.finished: asyncio.Future[None] = self._loop.create_future()
        self._finishing = False
        self._shed_reason: ShmBridgeError | None = None

    def start(self) -> None:
        """Called on the loop: register the session and start its thread."""
        self.server.sessions.add(self)
        try:
            self._thread.start()
        except BaseException:
            self.server.sessions.discard(self)
            raise

    def shed(self, reason: ShmBridgeError) -> None:
        """Called on the loop: end a connection that is still waiting for its WELCOME, telling it why.
        Before WELCOME the service has written nothing, so this small write cannot block."""
        if self.conn.state not in _UNWELCOMED:  # welcomed meanwhile (it settles before WELCOME)
            return
        self._shed_reason = reason
        log.info("session %s: %s: %s", self.id, reason.code.name, reason.message)
        self._send(self._frame(p.Error.of(0, reason)))
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
            self.server.pending.settle(self)
            self._leave_budget()
            with contextlib.suppress(RuntimeError):  # the loop is already closed: the service is gone
                self._loop.call_soon_threadsafe(self._finish, self._closing or reason)

    def _read_frames(self) -> str:
        """Read, decode and answer until the session ends; return why it ended."""
        peer = peer_credentials(self.sock)
        if not self.server.peer_allowed(peer):
            config = self.server.config
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
        touch = self.server.wakeups.touch if self.server.wakeups is not None else _busy_unnoticed
        while True:
            try:
                data = recv(_RECV)  # an idle session waits here until data, EOF or a shutdown
            except OSError as exc:
                return f"connection lost: {exc}"
            if data:  # a frame is coming in: keep idle CPUs ready for the next (low-latency mode)
                touch()
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
        timeout = self.server.config.request_timeout
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
            if self._shed_reason is not None:
                return f"{self._shed_reason.code.name}: {self._shed_reason.message}"
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
                if not exc.request_id:  # request id 0 is the connection's
                    return self._fatal(exc)
                self._write_error(exc.request_id, exc)
                continue
            except ShmBridgeError as exc:
                return self._fatal(exc)
            if event is None:
                return None
            try:
                if isinstance(event, p.OcrRequest):
                    self._on_ocr(event)
                elif isinstance(event, p.Alloc):
                    self._on_alloc(event)
                elif isinstance(event, p.Hello):
                    self._on_hello(event)
                elif isinstance(event, p.Bye):
                    return f"client said bye: {event.reason}" if event.reason else "client said bye"
            except ShmBridgeError as exc:  # connection-level: HELLO refused (limit, version)
                return self._fatal(exc)

    def _on_hello(self, event: p.Hello) -> None:
        version = p.negotiate(event.versions)
        # SessionLimitExceeded ends the session with a clear code, after a short wait for a place.
        self.server.budget.open_session(wait=_SESSION_WAIT)
        with self._budget_lock:  # _leave_budget reads it under the same lock
            self._opened = True
        self.metrics.sessions.inc()
        welcome = p.Welcome(
            event.request_id, version, self.id, limits=self.server.limits(), engine=self.core.pool.capabilities()
        )
        self.server.pending.settle(self)  # before WELCOME goes out, so a welcomed session is never shed
        self._send(self.conn.send(welcome))  # requests may flow from here on

    def _on_alloc(self, event: p.Alloc) -> None:
        try:
            slots = event.slots or self.server.config.slots_per_segment
            # On a thread of lower CPU priority: allocating and zeroing a large segment's pages is kernel
            # work that must not take the CPU from other sessions' requests (the GIL is not held).
            segment = self.server.allocator.submit(self.memory.allocate, event.frame_bytes, slots).result()
        except ShmBridgeError as exc:
            self._write_error(event.request_id, exc)
            return
        except (RuntimeError, concurrent.futures.CancelledError):  # the allocator is shut down
            self._write_error(event.request_id, ServiceUnavailable("the service is shutting down",
                                                                   code=ErrorCode.SHUTTING_DOWN))  # fmt: skip
            return
        frame = self._frame(p.SegmentGranted(event.request_id, segment.id, segment.slot_size, segment.slot_count))
        self._send(frame, segment.fd)
        segment.drop_fd()  # the client has its own now; the mapping keeps the service's: one fd per segment

    def _on_ocr(self, event: p.OcrRequest) -> None:
        try:
            options = p.options_of(event)
            segment = self.memory.segment(event.segment)
            view = segment.image_view(event.slot, event.offset, event.height, event.width, event.channels, event.pitch)
            self.memory.lend(event.segment, event.slot)
        except ShmBridgeError as exc:
            self._write_error(event.request_id, exc)
            return
        fmt: PixelFormat = event.pixel_format  # type: ignore[assignment]  # decoding yields members
        if not self.core.inline:
            self._wait_for_outbox_room()
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
            self._send(self._result_frame(event.request_id, result))
        finally:
            del view
            self.memory.give_back(event.segment, event.slot)

    def _fatal(self, exc: ShmBridgeError) -> str:
        """Answer an error that loses the stream, half-close, and linger a moment before the session ends.

        The half-close and the linger let a client that is still writing (its HELLO, say) read the reason
        instead of hitting a broken pipe."""
        log.info("session %s: %s: %s", self.id, exc.code.name, exc.message)
        self._send(self._frame(p.Error.of(getattr(exc, "request_id", None) or 0, exc)))
        deadline = time.monotonic() + _LINGER
        with contextlib.suppress(OSError):  # TimeoutError included: the linger is over
            self.sock.shutdown(socket.SHUT_WR)
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                if not self.sock.recv(_RECV):
                    break
        return f"{exc.code.name}: {exc.message}"

    def _leave_budget(self) -> None:
        """Give the session's place back (any thread, once). The thread does it as soon as it stops
        reading, so a client that says BYE and reconnects at once is not refused for the session it
        just ended; the session's bytes stay counted until its memory is unmapped."""
        with self._budget_lock:
            opened, self._opened = self._opened, False
        if opened:
            self.server.budget.close_session()
            self.metrics.sessions.dec()

    # -- on the loop: blocking engines ---------------------------------------------------------------

    async def _ocr_in_pool(self, event: p.OcrRequest, view: Any, fmt: PixelFormat, options: OcrOptions) -> None:
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
            frame = self._frame(p.Error.of(event.request_id, exc))
        else:
            frame = self._result_frame(event.request_id, result)
        del view
        self._post(frame)  # written by the session's writer job: a slow reader must not stall the loop

    def _pending_done(self, future: concurrent.futures.Future[None]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("session %s: request failed", self.id, exc_info=future.exception())

    # -- frames out (any thread) ---------------------------------------------------------------------

    def _frame(self, event: p.Event) -> bytes | None:
        """The frame of ``event`` (the connection's state moves with it), or ``None`` once the service has
        said its last word to this client (a late reply after a fatal error, say): nothing more goes out."""
        try:
            return self.conn.send(event)
        except SessionClosed:
            return None

    def _result_frame(self, request_id: int, result: OcrResult) -> bytes | None:
        """A RESULT frame, the result serialised once by pydantic's own JSON serialiser."""
        try:
            return self.conn.send_result_json(request_id, result.model_dump_json().encode())
        except SessionClosed:
            return None

    def _send(self, frame: bytes | None, fd: int | None = None) -> None:
        """Write one whole frame (with ``fd`` attached by SCM_RIGHTS); ``None`` writes nothing. A write that
        fails or times out half-way loses the stream: the socket is shut down, which ends the session
        thread's read."""
        if frame is None:
            return
        with self._send_lock:
            if self._connection_lost:
                return
            try:
                if fd is None:
                    self.sock.sendall(frame)
                else:
                    sent = socket.send_fds(self.sock, [frame], [fd])
                    if sent < len(frame):
                        self.sock.sendall(memoryview(frame)[sent:])
            except OSError as exc:
                self._connection_lost = True
                with self._post_lock:
                    self._outbox.clear()
                    self._outbox_room.notify_all()
                # A client that left (its BYE or its exit) makes this routine: DEBUG, like the rest of a
                # session's housekeeping; anything else is worth an INFO line.
                gone = isinstance(exc, (BrokenPipeError, ConnectionResetError))
                log.log(logging.DEBUG if gone else logging.INFO, "session %s: writing failed, the session ends: %s",
                        self.id, exc)  # fmt: skip
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)

    def _write_error(self, request_id: int, exc: ShmBridgeError) -> None:
        self._send(self._frame(p.Error.of(request_id, exc)))

    def _post(self, frame: bytes | None) -> None:
        """Queue ``frame`` for the session's writer job (started if none runs); ``None`` queues nothing.
        Never blocks."""
        if frame is None:
            return
        with self._post_lock:
            self._outbox.append(frame)
            if self._writing:
                return
            self._writing = True
        try:
            self.server.writers.submit(self._flush)
        except RuntimeError:  # the service is shutting down: nothing will be written any more
            with self._post_lock:
                self._outbox.clear()
                self._writing = False

    def _flush(self) -> None:
        """The writer job: write queued frames in order until none is left."""
        while True:
            with self._post_lock:
                if not self._outbox:
                    self._writing = False
                    self._outbox_room.notify_all()
                    return
                frame = self._outbox.popleft()
                self._outbox_room.notify_all()
            self._send(frame)

    def _wait_for_outbox_room(self) -> None:
        """Backpressure, on the session thread: while the client leaves ``_OUTBOX_LIMIT`` replies unread,
        read none of its requests (its own sends block instead of the service's memory growing)."""
        with self._post_lock:
            self._outbox_room.wait_for(
                lambda: len(self._outbox) < _OUTBOX_LIMIT or self._connection_lost or self._finishing
            )

    def _writer_idle(self) -> bool:
        """True when no writer job runs, so every queued frame has been written (or dropped)."""
        with self._post_lock:
            return not self._writing

    # -- ending (on the loop) ------------------------------------------------------------------------

    def request_close(self, reason: str) -> None:
        """Service shutdown: read nothing new (the half-close wakes the session thread), finish in-flight
        work, say BYE."""
        self._closing = reason
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self._finishing:
            return
        self._finishing = True
        self._loop.create_task(self._wind_down(reason), name=f"session-{self.id}-end")

    async def _wind_down(self, reason: str) -> None:
        """Let the thread end, finish or cancel in-flight work, then release every mapping. Never raises."""
        log.debug("session %s ends: %s", self.id, reason)  # housekeeping: one per session
        config = self.server.config
        try:
            if self._thread.is_alive():  # a half-close ends its read at once; a notify ends a backpressure wait
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RD)
                with self._post_lock:
                    self._outbox_room.notify_all()
                await wait_until(lambda: not self._thread.is_alive(), config.request_timeout + _LINGER)
            pending = [asyncio.wrap_future(future) for future in list(self._pending)]
            if pending:
                _done, late = await asyncio.wait(pending, timeout=config.drain_timeout)
                for future in late:
                    future.cancel()
                if late:
                    await asyncio.wait(late, timeout=1.0)
            if self._closing:
                self._post(self._frame(p.Bye(0, self._closing)))
            await wait_until(self._writer_idle, _LINGER)  # replies and BYE already queued get a moment to go out
        finally:
            # A writer may be blocked in send (a client that stopped reading): the shutdown makes that send
            # fail at once, so the lock is free in a moment and the loop never waits for request_timeout.
            self._connection_lost = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            with self._send_lock:
                self.sock.close()
            self.server.fds.connections.give()  # the socket's, taken at accept
            self.server.pending.settle(self)
            self.server.sessions.discard(self)
            self.core.streams.release(self.stream_owner)
            await self._release_memory()
            self._leave_budget()  # done by the thread already, unless it never ended
            if not self.finished.done():
                self.finished.set_result(None)

    async def _release_memory(self) -> None:
        """Unmap once no engine thread reads a slot; a timed-out engine thread is waited for."""
        await wait_until(lambda: not self.memory.slots_in_use, self.server.config.engine_timeout + 5.0, step=0.02)
        lent = self.memory.slots_in_use
        if lent:
            log.error("session %s: %d slot(s) still lent after the engine timeout; unmapping anyway", self.id, lent)
        released = self.memory.used_bytes
        try:
            # munmap of a large segment takes a while (freeing its pages, if ours were the last reference);
            # off the loop, so HTTP does not wait for it.
            await asyncio.to_thread(self.memory.close)
        except BufferError:
            gc.collect()  # a traceback may still hold a view
            try:
                self.memory.close()
            except BufferError:
                log.error("session %s: a view of its memory is still referenced; mapping kept", self.id)
        log.debug("session %s released %d bytes of shared memory", self.id, released)


def _lower_priority() -> None:
    """Make the calling thread nicer than the rest of the process (Linux: niceness is per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10))


def _busy_unnoticed() -> None:
    """What a frame read does to the CPUs' idle state without low-latency mode: nothing."""
