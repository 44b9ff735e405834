"""Connections to the session socket that have not been welcomed yet: how many, and which is the oldest.

A legitimate client says HELLO as soon as it connects, so the connection that has waited longest for its
WELCOME is the likeliest to be an attacker holding a thread and a socket; the session server sheds it
when a new connection would pass ``max_pending_connections``. This module only keeps the order; it
must never touch a socket.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class PendingConnections(Generic[T]):
    """Sessions that have not been welcomed yet, oldest first, at most ``limit``. Thread-safe (the loop
    admits, session threads settle); a leaf lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._order: dict[T, None] = {}  # insertion order is age
        self._lock = threading.Lock()

    def admit(self, session: T) -> T | None:
        """Count ``session``; return the oldest pending one to shed when the limit was reached."""
        with self._lock:
            oldest = next(iter(self._order)) if len(self._order) >= self.limit else None
            if oldest is not None:
                del self._order[oldest]
            self._order[session] = None
            return oldest

    def settle(self, session: T) -> None:
        """``session`` was welcomed or ended: it waits no more."""
        with self._lock:
            self._order.pop(session, None)

    def __len__(self) -> int:
        return len(self._order)
