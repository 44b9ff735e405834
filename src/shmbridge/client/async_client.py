"""``AsyncClient``: the asyncio client, ``shell_async.AsyncClientShell`` plus how it waits for a session.

Every call is written once, in ``shell_async.py`` (from which ``Client`` gets its own, generated). What this
module owns is what really differs: ``ocr_batch`` (concurrent, bounded) and how a session is (re)opened.
``AsyncClient`` pipelines any number of concurrent calls over one ``AsyncSessionClient`` and its slot pool
(a call that finds every slot lent waits for one, up to its timeout, then raises ``RequestTimeout``), and
keeps one pooled ``httpx.AsyncClient``. A lost session is reopened by one background task that sleeps on
the backoff clock between attempts; calls meanwhile go over HTTP. ``close()`` cancels and awaits that
task, so nothing outlives the client. Use it from one event loop.

This module must never hold a call's logic (it belongs in ``shell_async.py``, so that both clients have
it), block the event loop, or leave a task running after ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from ..errors import ServiceUnavailable
from .base import ClientResult, Lifecycle, SessionFailure, TransportPolicy
from .shell_async import AsyncClientShell
from .shm_async import AsyncSessionTransport

log = logging.getLogger("shmbridge.client")


class AsyncClient(AsyncClientShell):
    """asyncio OCR client: shared memory when it can, HTTP when it must.

    ::

        async with shmbridge.AsyncClient() as client:
            results = await asyncio.gather(*(client.ocr(image) for image in images))
    """

    _reconnect_task: asyncio.Task[None] | None = None

    def _make_transports(self) -> None:
        super()._make_transports()
        self._connect_lock = asyncio.Lock()

    async def ocr_batch(
        self, images: Iterable[Any], *, max_concurrency: int = 16, **options: Any
    ) -> list[ClientResult]:
        """OCR several images concurrently (at most ``max_concurrency`` at once), results in input order.

        The first error cancels the rest and is raised.
        """
        gate = asyncio.Semaphore(max_concurrency)

        async def one(image: Any) -> ClientResult:
            async with gate:
                return await self.ocr(image, **options)

        tasks = [asyncio.ensure_future(one(image)) for image in images]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # -- the session -----------------------------------------------------------------------------------

    async def _session_or_none(self, *, wait: bool = False) -> AsyncSessionTransport | None:
        """The open session; else ``None`` (use HTTP) while the reconnect task works on it.

        ``wait`` (at open) and ``mode="shm"`` connect right here instead.
        """
        session = self._session
        if session is not None and session.connected:
            return session
        if self.transport_policy is TransportPolicy.HTTP or self.state is not Lifecycle.OPENED:
            return None
        if session is not None:
            await self._lost(session, SessionFailure(ServiceUnavailable("the session ended"), broken=True))
        if self._discovered_none:
            return None
        if wait or self.transport_policy is TransportPolicy.SHM:
            async with self._connect_lock:
                current = self._session
                if current is not None and current.connected:
                    return current
                connected = await self._connect()
            if connected is None:
                self._reconnect_later()
            return connected
        self._reconnect_later()
        return None

    async def _open_session(self) -> None:
        await self._session_or_none(wait=True)

    def _reconnect_later(self) -> None:
        """Start the reconnect task, unless it runs already (auto mode only)."""
        if (
            self.transport_policy is not TransportPolicy.AUTO
            or self.state is not Lifecycle.OPENED
            or self._discovered_none
        ):
            return
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(
                self._reconnect_loop(), name="shmbridge-reconnect"
            )

    async def _stop_reconnecting(self) -> None:
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reconnect_loop(self) -> None:
        """Sleep on the backoff clock, try, repeat, until a session is open or the client closes."""
        while self.state is Lifecycle.OPENED and not self._discovered_none:
            await asyncio.sleep(self._clock.remaining())
            async with self._connect_lock:
                current = self._session
                if current is not None and current.connected:
                    return
                try:
                    if await self._connect() is not None:
                        return
                except Exception as exc:  # a bug must not kill reconnection silently
                    log.warning("reconnecting the session failed unexpectedly: %r", exc)
                    self._clock.failed()
