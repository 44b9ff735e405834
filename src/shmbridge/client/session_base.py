"""What both low-level session clients share, without waiting: ``SessionBase`` and the session's errors.

``session.SessionClient`` (blocking) and ``session_async.AsyncSessionClient`` (asyncio) differ only in how
they wait: the blocking one reads the socket from whichever thread waits (polling first, then ``select``)
and hands replies over under a condition; the asyncio one runs a reader task and resolves futures. The rest
lives here once, on top of ``slots.SessionState`` (requests, replies, slots):

- what a session knows: its socket, its state, whether it is connected, its WELCOME;
- where each frame from the service goes (``_dispatch``): a reply to its waiter, the late reply of a request
  that timed out back to the free list, BYE or a connection-wide ERROR to ``_fail``;
- how a session breaks: the first failure wins, every waiter and every later call sees it; a frame that
  cannot be decoded, an end of file or a failed read or send all break it, with one message each;
- what a slot request finds: a free slot, a time to wait for one, or the need to allocate (``_free_or_wait``).

It must never touch the socket, take a lock or wait: each half does that its own way, around these calls
(the blocking half calls ``_dispatch`` and ``_feed`` with its condition held).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from .. import wire as p
from ..errors import ProtocolError, RequestTimeout, ServiceUnavailable, SessionClosed, ShmBridgeError, UsageError
from .slots import SessionState, SlotLease, error_of

DEFAULT_TIMEOUT = 30.0
RECV_BYTES = 32 * 1024  # below malloc's mmap threshold: a bigger buffer costs page faults on every read


def frame_bytes(height: int, width: int, channels: int) -> int:
    return height * width * channels


class SessionBase:
    """The state and the decisions of one session; the subclass waits (see the module's docstring)."""

    #: Hands a reply to the caller waiting for it, by request id.
    _deliver: Callable[[int, p.Event], None]

    def __init__(self, path: str | os.PathLike[str], timeout: float) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.state = SessionState()
        self._sock: socket.socket | None = None
        self._broken: ShmBridgeError | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None and self._broken is None

    @property
    def welcome(self) -> p.Welcome:
        """The service's WELCOME (version, session id, limits, engine); ``UsageError`` before ``connect``."""
        if self.state.welcome is None:
            raise UsageError("the session is not connected")
        return self.state.welcome

    def owns(self, lease: SlotLease) -> bool:
        """True when ``lease`` is a slot of this (still open) session (one dict lookup: no lock needed)."""
        return self.state.segments.get(lease.segment.id) is lease.segment

    def has_slot_class(self, nbytes: int) -> bool:
        """True when slots for ``nbytes`` exist, so ``acquire`` only waits for one (it never allocates)."""
        return self.state.has_class_for(nbytes)

    # -- what the subclass does its own way -----------------------------------------------------------------

    def release(self, lease: SlotLease) -> None:
        """Give a slot back to the free list and wake whoever waits for one."""
        raise NotImplementedError

    def _fail(self, error: ShmBridgeError) -> None:
        """Break the session with ``error`` unless it is broken already, and wake every waiter."""
        raise NotImplementedError

    # -- decisions ------------------------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _give_back(self, lease: SlotLease) -> None:
        """End of a block that held ``lease``: back to the pool, unless submit left it with the service."""
        if not lease.released:
            self.release(lease)

    def _free_or_wait(self, nbytes: int, deadline: float) -> SlotLease | float | None:
        """A free slot for ``nbytes``; else the seconds left to wait for one to come back (``RequestTimeout``
        when none are left); else ``None``: no slot of that size exists, allocate a segment."""
        self._raise_if_broken()
        lease = self.state.try_lease(nbytes)
        if lease is not None:
            return lease
        if not self.state.has_class_for(nbytes):
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._slot_timeout(nbytes)
        return remaining

    def _feed(self, data: bytes, fds: list[int]) -> list[p.Event]:
        """Decode what arrived; a frame that cannot be decoded (or a segment that cannot be mapped) breaks
        the session. After ``close`` the fds are closed and nothing is decoded."""
        if self.state.closed:
            for fd in fds:
                os.close(fd)
            return []
        try:
            return self.state.feed(data, fds)
        except ShmBridgeError as exc:
            self._fail(exc if isinstance(exc, ProtocolError) else SessionClosed(str(exc)))
        except OSError as exc:
            self._fail(SessionClosed(f"mapping a segment from the service failed: {exc}"))
        return []

    def _dispatch(self, events: list[p.Event]) -> None:
        """Send each frame where it goes: the service ending the session breaks it, the late reply of a
        request that timed out frees its slot, any other reply goes to its waiter."""
        reclaim = self.state.reclaim
        for event in events:
            rid = event.request_id
            if isinstance(event, p.Bye):
                self._fail(SessionClosed(f"the service ended the session: {event.reason}"))
            elif isinstance(event, p.Error) and rid == 0:
                self._fail(error_of(event))
            elif (lease := reclaim(rid)) is not None:
                self.release(lease)
            else:
                self._deliver(rid, event)

    def _closed_by_peer(self, fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        self._fail(SessionClosed("the service closed the session"))

    def _read_failed(self, exc: Exception) -> None:
        self._fail(SessionClosed(f"reading from the service failed: {exc}"))

    def _send_failed(self, exc: OSError) -> ShmBridgeError:
        """Break the session for a failed send; returns the error to raise (the first failure, if earlier)."""
        self._fail(SessionClosed(f"sending to the service failed: {exc}"))
        assert self._broken is not None
        return self._broken

    def _closing(self) -> None:
        self._fail(SessionClosed("the session was closed"))

    def _unreachable(self, reason: str) -> ServiceUnavailable:
        """What connecting raises when the socket does not answer."""
        return ServiceUnavailable(f"socket {self.path}: {reason}")

    @staticmethod
    def _reply_timeout(rid: int) -> RequestTimeout:
        return RequestTimeout(f"no reply from the service within the timeout (request {rid})")

    @staticmethod
    def _slot_timeout(nbytes: int) -> RequestTimeout:
        return RequestTimeout(f"every slot for {nbytes}-byte frames stayed lent until the timeout")

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise self._broken
