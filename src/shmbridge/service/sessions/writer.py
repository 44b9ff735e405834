"""Every frame a session sends: written whole, from any thread, and the outbox of its one writer job.

Two ways out. ``send`` writes at once on the calling thread (the session thread's inline replies,
WELCOME, SEGMENT with its fd by SCM_RIGHTS). ``post`` queues a frame for the session's writer job (the
replies of blocking engines, BYE), so the loop never waits on a slow reader; at most one job per session
runs at a time, on the listener's writer pool, so a client that stops reading holds one worker and never
another session's replies. ``wait_for_room`` is the backpressure: the session thread reads no more
requests while ``OUTBOX_LIMIT`` replies wait.

A write that fails or times out half-way (the socket's ``SO_SNDTIMEO``) loses the stream: no frame may
follow, the outbox is emptied, and the socket is shut down, which ends the session thread's read.

Locks: ``_send_lock`` is held while one whole frame is written; only ``_post_lock`` is taken under it.
``_post_lock`` (with its condition ``_room``) guards the outbox and is held only for a few assignments.
This module must never read the socket or decide when a session ends.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("shmbridge.session")

OUTBOX_LIMIT = 64  # replies of blocking engines waiting to be written before a session stops reading


class SessionWriter:
    """The writing half of one session's socket."""

    def __init__(self, sock: socket.socket, session_id: str, submit: Callable[[Callable[[], None]], Any]) -> None:
        self._sock = sock
        self._id = session_id
        self._submit = submit  # starts a writer job (the listener's pool); RuntimeError once it is shut down
        self._send_lock = threading.Lock()
        self._lost = False  # a write failed half-way: no frame may follow (guarded by _send_lock)
        self._outbox: deque[bytes] = deque()  # frames for the writer job (guarded by _post_lock)
        self._writing = False  # a writer job runs (guarded by _post_lock)
        self._post_lock = threading.Lock()
        self._room = threading.Condition(self._post_lock)  # notified as the writer job drains

    def send(self, frame: bytes, fd: int | None = None) -> None:
        """Write one whole frame (with ``fd`` attached by SCM_RIGHTS). A write that fails or times out
        half-way loses the stream: the socket is shut down, which ends the session thread's read."""
        with self._send_lock:
            if self._lost:
                return
            try:
                if fd is None:
                    self._sock.sendall(frame)
                else:
                    sent = socket.send_fds(self._sock, [frame], [fd])
                    if sent < len(frame):
                        self._sock.sendall(memoryview(frame)[sent:])
            except OSError as exc:
                self._lost = True
                with self._post_lock:
                    self._outbox.clear()
                    self._room.notify_all()
                # A client that left (its BYE or its exit) makes this routine: DEBUG, like the rest of a
                # session's housekeeping; anything else is worth an INFO line.
                gone = isinstance(exc, (BrokenPipeError, ConnectionResetError))
                log.log(logging.DEBUG if gone else logging.INFO, "session %s: writing failed, the session ends: %s",
                        self._id, exc)  # fmt: skip
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def post(self, frame: bytes) -> None:
        """Queue ``frame`` for the session's writer job (started if none runs). Never blocks."""
        with self._post_lock:
            self._outbox.append(frame)
            if self._writing:
                return
            self._writing = True
        try:
            self._submit(self._flush)
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
                    self._room.notify_all()
                    return
                frame = self._outbox.popleft()
                self._room.notify_all()
            self.send(frame)

    def wait_for_room(self, ending: Callable[[], bool]) -> None:
        """Backpressure, on the session thread: while the client leaves ``OUTBOX_LIMIT`` replies unread,
        read none of its requests (its own sends block instead of the service's memory growing). A lost
        stream or ``ending()`` (checked whenever the condition is notified) ends the wait too."""
        with self._post_lock:
            self._room.wait_for(lambda: len(self._outbox) < OUTBOX_LIMIT or self._lost or ending())

    def wake(self) -> None:
        """Make a backpressure wait look at its condition again (the session is ending)."""
        with self._post_lock:
            self._room.notify_all()

    def idle(self) -> bool:
        """True when no writer job runs, so every queued frame has been written (or dropped)."""
        with self._post_lock:
            return not self._writing

    def close(self) -> None:
        """No frame goes out any more; close the socket once no write holds it.

        A writer may be blocked in send (a client that stopped reading): the shutdown makes that send
        fail at once, so the lock is free in a moment and the loop never waits for request_timeout."""
        self._lost = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with self._send_lock:
            self._sock.close()
