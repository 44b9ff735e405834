"""Waiting on the event loop for something another thread changes, with a deadline.

The service's shutdown waits on threads it cannot await (a session's thread, an engine thread, a writer
blocked in ``send``): joining them would block the loop, and handing the join to an executor would tie
up one of its few workers for as long as the thread is stuck. So the loop looks again every few
milliseconds, for a bounded time. It must never block the loop, and never wait without a deadline.
(Not to be confused with idle CPUs *polling*, the low-latency hold's business in ``wakeups``.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(done: Callable[[], bool], seconds: float, step: float = 0.005) -> bool:
    """Check ``done`` every ``step`` seconds until it is true or ``seconds`` have passed; its last value."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True
