"""A session's place under ``max_sessions``: taken by its HELLO, given back exactly once.

The session thread gives the place back as soon as it stops reading, so a client that says BYE and
reconnects at once is not refused for the session it just ended; the loop gives it back at the end of
the wind-down when the thread never got there. The session's bytes are not this module's: they stay
counted in the ``MemoryBudget`` until its memory is unmapped. It must never block while holding its
lock, and never count a place twice.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ...memory import MemoryBudget

if TYPE_CHECKING:
    from prometheus_client import Gauge


class SessionPlace:
    """One session's place, and the ``shmbridge_sessions`` gauge that counts it. Any thread; ``_lock`` is
    innermost (held only for one swap)."""

    def __init__(self, budget: MemoryBudget, gauge: Gauge) -> None:
        self._budget = budget
        self._gauge = gauge
        self._lock = threading.Lock()  # guards _held
        self._held = False

    def take(self, wait: float) -> None:
        """Raises ``SessionLimitExceeded`` when no place came free within ``wait`` seconds."""
        self._budget.open_session(wait=wait)
        with self._lock:  # give_back reads it under the same lock
            self._held = True
        self._gauge.inc()

    def give_back(self) -> None:
        """Any thread, any number of times: only the first call after ``take`` gives the place back."""
        with self._lock:
            held, self._held = self._held, False
        if held:
            self._budget.close_session()
            self._gauge.dec()
