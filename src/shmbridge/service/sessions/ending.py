"""The last two steps of a session's end, on the loop: its in-flight requests, then its memory.

``drain_requests`` lets the requests a session handed to the loop (blocking engines) finish within
``drain_timeout`` and cancels the rest; ``release_memory`` unmaps the session's segments once no engine
thread reads a slot, off the loop, and retries once after a garbage collection when a view is still
referenced (a traceback may hold one). The session (``session.Session._wind_down``) calls them after
its thread has ended; the order of the whole end is there.

What this module must never do: run on a session's thread, or unmap while a slot is lent before the
engine timeout (and a grace) has passed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
from collections.abc import Iterable

from ...memory import SessionMemory
from ..waiting import wait_until

log = logging.getLogger("shmbridge.session")

_CANCEL_WAIT = 1.0  # seconds cancelled requests get to unwind


async def drain_requests(requests: Iterable[concurrent.futures.Future[None]], drain_timeout: float) -> None:
    """Wait up to ``drain_timeout`` for ``requests``; cancel the late ones and give them a moment."""
    pending = [asyncio.wrap_future(future) for future in list(requests)]
    if not pending:
        return
    _done, late = await asyncio.wait(pending, timeout=drain_timeout)
    for future in late:
        future.cancel()
    if late:
        await asyncio.wait(late, timeout=_CANCEL_WAIT)


async def release_memory(memory: SessionMemory, session_id: str, engine_timeout: float) -> None:
    """Unmap once no engine thread reads a slot; a timed-out engine thread is waited for."""
    await wait_until(lambda: not memory.slots_in_use, engine_timeout + 5.0, step=0.02)
    lent = memory.slots_in_use
    if lent:
        log.error("session %s: %d slot(s) still lent after the engine timeout; unmapping anyway", session_id, lent)
    released = memory.used_bytes
    try:
        # munmap of a large segment takes a while (freeing its pages, if ours were the last reference);
        # off the loop, so HTTP does not wait for it.
        await asyncio.to_thread(memory.close)
    except BufferError:
        gc.collect()  # a traceback may still hold a view
        try:
            memory.close()
        except BufferError:
            log.error("session %s: a view of its memory is still referenced; mapping kept", session_id)
    log.debug("session %s released %d bytes of shared memory", session_id, released)
