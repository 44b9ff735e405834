"""The session socket's listener: ``SessionServer`` accepts connections and runs one ``Session`` each.

It owns what every session shares: the listening socket (its directory 0770 or stricter, the socket
file 0660), the accept loop on the service's asyncio loop, the memory budget and the fd budget a peer
draws from (a connection's socket is taken from ``FdBudget`` before its session starts, so a peer gets a
typed error before the process runs out of fds), the connections still waiting for their WELCOME (at
most ``max_pending_connections``; a new one sheds the oldest, ``PendingConnections``), the thread pools
that write replies and create segments, the low-latency hold (``service/wakeups.py``: each frame a
session reads keeps idle CPUs polling for a moment) and the gauges read from the sessions at scrape
time. Sessions reach the service through the few methods below, never through its parts; the
parts of a session built from what they share come from here too (``new_memory``, ``new_writer``,
``new_place``).

What it must never do: read or write a session's frames (that is ``session`` and ``writer``), or wait
for a session's thread on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from ... import wire
from ...config import ServiceConfig
from ...errors import Busy, ShmBridgeError
from ...memory import MemoryBudget, Segment, SessionMemory
from ...unixsock import PeerCredentials, prepare_socket_path, set_send_timeout
from ..core import ServiceCore
from ..fd_budget import Descriptors
from ..wakeups import OFF_STATUS, CpuWakeupHold
from .frames import refusal_frame
from .pending import PendingConnections
from .place import SessionPlace
from .session import Session
from .writer import SessionWriter

log = logging.getLogger("shmbridge.session")


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
        # Low latency: every frame read keeps idle CPUs polling for a moment (service/wakeups.py).
        self.wakeups = CpuWakeupHold(self.config.low_latency_hold) if self.config.low_latency else None
        core.metrics.cpu_wakeup_hold.set_function(lambda: float(self.wakeups is not None and self.wakeups.held))
        #: What a session thread calls for each read that brought bytes.
        self.frame_read = self.wakeups.touch if self.wakeups is not None else _busy_unnoticed
        # Writes that do not come from a session's own thread (replies of blocking engines, BYE). At most
        # one job per session at a time (``SessionWriter.post``), so a client that stops reading holds one
        # worker, never another session's replies.
        self.writers = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.max_sessions + 1, thread_name_prefix="session-write"
        )
        # Segments are created here, at a lower CPU priority than the session threads (``allocate``).
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
                    conn.send(refusal_frame(exc))
                conn.close()
                continue
            try:
                conn.setblocking(True)
                set_send_timeout(conn, self.config.request_timeout)
                session = Session(self, conn)
                self._start(session)
            except (OSError, RuntimeError) as exc:  # RuntimeError: no thread could be started
                log.warning("could not start a session: %s", exc)
                conn.close()
                self.fds.connections.give()
                continue
            oldest = self.pending.admit(session)
            if oldest is not None:
                oldest.shed(Busy(f"{self.pending.limit} connections are waiting for their WELCOME; the oldest "
                                 "was shed (send HELLO at once after connecting)"))  # fmt: skip

    def _start(self, session: Session) -> None:
        """Register ``session`` and start its thread (on the loop)."""
        self.sessions.add(session)
        try:
            session.start()
        except BaseException:
            self.sessions.discard(session)
            raise

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
        return wire.welcome_limits(self.config)

    # -- what a session asks of the service (any thread unless said) ---------------------------------

    def peer_allowed(self, peer: PeerCredentials) -> bool:
        return peer.uid in self.config.allowed_uids or peer.gid in self.config.allowed_gids

    def new_memory(self) -> SessionMemory:
        """A session's memory, under the service's byte budget and the fds for segments."""
        c = self.config
        limits = (c.session_bytes, c.max_frame_bytes, c.max_segments_per_session)
        return SessionMemory(self.budget, *limits, self.fds.memory)

    def new_writer(self, sock: socket.socket, session_id: str) -> SessionWriter:
        """A session's writing half, its writer jobs on the listener's pool."""
        return SessionWriter(sock, session_id, self.writers.submit)

    def new_place(self) -> SessionPlace:
        """A session's place under ``max_sessions``, counted in ``shmbridge_sessions``."""
        return SessionPlace(self.budget, self.core.metrics.sessions)

    def welcome(self, request_id: int, version: int, session_id: str) -> wire.Welcome:
        """The WELCOME a session sends: its id, the service's limits and the engine's capabilities."""
        return wire.Welcome(request_id, version, session_id, limits=self.limits(), engine=self.core.pool.capabilities())

    def allocate(self, memory: SessionMemory, frame_bytes: int, slots: int) -> Segment:
        """A new segment of ``memory``, created on the allocator's thread; the caller blocks for it.

        On a thread of lower CPU priority: allocating and zeroing a large segment's pages is kernel work
        that must not take the CPU from other sessions' requests (the GIL is not held). Raises
        ``RuntimeError`` or ``CancelledError`` once the allocator is shut down."""
        return self.allocator.submit(memory.allocate, frame_bytes, slots).result()

    def settle(self, session: Session) -> None:
        """``session`` was welcomed or is ending: it no longer waits for its WELCOME (never shed)."""
        self.pending.settle(session)

    def forget(self, session: Session) -> None:
        """On the loop, once ``session``'s socket is closed: its fd back, its place in every set, its
        streams freed (its memory is the session's to release)."""
        self.fds.connections.give()  # the socket's, taken at accept
        self.pending.settle(session)
        self.sessions.discard(session)
        self.core.streams.release(session.stream_owner)


def _lower_priority() -> None:
    """Make the calling thread nicer than the rest of the process (Linux: niceness is per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10))


def _busy_unnoticed() -> None:
    """What a frame read does to the CPUs' idle state without the low-latency hold: nothing."""
