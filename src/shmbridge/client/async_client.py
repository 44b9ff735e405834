"""``AsyncClient``: the asyncio shell over ``base.BaseClient``, matching ``Client`` method for method.

It pipelines any number of concurrent calls over one ``AsyncSessionClient`` and its slot pool (a call that
finds every slot lent waits for one, up to its timeout, then raises ``RequestTimeout``), and keeps one pooled
``httpx.AsyncClient``. A lost session is reopened by one background task that sleeps on the backoff clock
between attempts; calls meanwhile go over HTTP. ``close()`` cancels and awaits that task, so nothing outlives
the client. Use it from one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..capture import Capture, Watcher, WatchFrame, grab_into_slot
from ..errors import ServiceUnavailable, ShmBridgeError, TransportError
from ..models import OcrOptions, PixelFormat, Roi, TextLine
from .async_session import AsyncSessionClient
from .base import (
    BaseClient,
    ClientResult,
    Lifecycle,
    Mode,
    OcrCall,
    RetryPolicy,
    SessionFailure,
    Timeouts,
    build_options,
    info_from_welcome,
    shape_result,
    socket_from_info,
    unwrap_capture,
    with_warnings,
)
from .diagnose import Diagnosis, diagnose_async
from .http import ENHANCED_METRICS_PATH, HEALTH_PATH, INFO_PATH, AsyncHttpTransport, stream_path
from .inputs import FrameRegistry, Prepared, prepare
from .shm import AsyncSessionTransport
from .streams import AsyncClientStream

log = logging.getLogger("shmbridge.client")


class AsyncClient(BaseClient):
    """asyncio OCR client: shared memory when it can, HTTP when it must.

    ::

        async with shmbridge.AsyncClient() as client:
            results = await asyncio.gather(*(client.ocr(image) for image in images))
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        socket: str | os.PathLike[str] | None = None,
        mode: Mode | str = Mode.AUTO,
        timeout: float | Timeouts = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(url, socket=socket, mode=mode, timeout=timeout, retry=retry)
        self._http = AsyncHttpTransport(self.url, self.timeouts, self.retry)
        self._session: AsyncSessionTransport | None = None
        self._connect_lock = asyncio.Lock()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._frames = FrameRegistry()

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def open(self) -> AsyncClient:
        """Discover the socket and open the session now (calls do this themselves when needed)."""
        if not self._check_open():
            return self
        self.state = Lifecycle.OPENED
        if self.mode is not Mode.HTTP:
            await self._session_or_none(wait=True)
        return self

    async def close(self) -> None:
        """Stop reconnecting, close the session and the HTTP pool. Safe to call twice."""
        if self.state is Lifecycle.CLOSED:
            return
        self.state = Lifecycle.CLOSED
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._screens.close()
        await self._http.close()

    async def __aenter__(self) -> AsyncClient:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def session_active(self) -> bool:
        """True while calls go over shared memory."""
        session = self._session
        return session is not None and session.connected

    # -- OCR ---------------------------------------------------------------------------------------------------

    async def ocr(
        self,
        image: Any,
        *,
        pixel_format: PixelFormat | str | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
        options: OcrOptions | None = None,
        **option_fields: Any,
    ) -> ClientResult:
        """OCR one image; see ``Client.ocr``."""
        started = time.perf_counter()
        if self._check_open():
            await self.open()
        image, pixel_format, noted = unwrap_capture(image, pixel_format)
        opts = build_options(options, **option_fields)
        result = await self._ocr(prepare(image, pixel_format, self._frames), opts, request_id, timeout, started)
        return with_warnings(result, noted) if noted else result

    def stream(self, name: str, *, delta: bool = False, **option_fields: Any) -> AsyncClientStream:
        """A screen stream: ``async with client.stream("screen") as s: await s.ocr(frame)``; see
        ``Client.stream``."""
        return AsyncClientStream(self, name, delta, option_fields)

    async def close_stream(self, name: str) -> bool:
        """Free the stream ``name`` on the service now, where HTTP carried it; see ``Client.close_stream``."""
        self._check_open()
        try:
            response = await self._http.send("DELETE", stream_path(name), self.timeouts.request)
        except TransportError:
            return False
        return bool(response.json().get("closed"))

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

    async def detect_text(self, image: Any, **options: Any) -> list[TextLine]:
        """Only the text regions of ``image``; see ``Client.detect_text``."""
        return (await self.ocr(image, **options)).lines

    @contextlib.asynccontextmanager
    async def frame(
        self, height: int, width: int, channels: int = 3, *, timeout: float | None = None
    ) -> AsyncIterator[np.ndarray]:
        """A writable array in shared memory, sent by reference by ``ocr``; see ``Client.frame``.

        Without a session (HTTP mode, or shared memory unavailable) it is a plain numpy array sent over HTTP.
        """
        if self._check_open():
            await self.open()
        session = await self._session_or_none()
        lease = None
        if session is not None:
            try:
                lease = await session.lease_frame(height, width, channels, timeout or self.timeouts.session_timeout)
            except SessionFailure as failure:
                await self._lost(session, failure)
                if self.mode is Mode.SHM:
                    raise failure.error from None
        elif self.mode is Mode.SHM:
            raise self._no_session_error()
        if lease is None or session is None:
            yield np.zeros((height, width) if channels == 1 else (height, width, channels), np.uint8)
            return
        self._frames.add(lease)
        try:
            assert lease.array is not None
            yield lease.array
        finally:
            self._frames.remove(lease)
            session.release(lease)

    @contextlib.asynccontextmanager
    async def capture(
        self,
        region: Roi | tuple[int, int, int, int] | None = None,
        *,
        display: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Capture]:
        """The screen (or ``region``) in a slot, written by the X server; see ``Client.capture``."""
        screen = self._screens.get(display)
        roi = screen.region(region)
        async with self.frame(roi.height, roi.width, 4, timeout=timeout) as array:
            lease = self._frames.find(array)
            yield grab_into_slot(screen, array, roi, lease.segment if lease is not None else None)

    async def watch(
        self,
        interval: float = 1.0,
        *,
        region: Roi | tuple[int, int, int, int] | None = None,
        display: str | None = None,
        stream: str | None = "screen",
        frames: int | None = None,
        **option_fields: Any,
    ) -> AsyncIterator[WatchFrame]:
        """Capture and OCR the screen at most once per ``interval``; see ``Client.watch``."""
        watcher = Watcher(interval, stream, frames)
        while watcher.running:
            await asyncio.sleep(watcher.delay())
            async with self.capture(region, display=display) as shot:
                fresh = watcher.needs_ocr(shot)
                result = await self.ocr(shot, **watcher.options(option_fields)) if fresh else None
                step = watcher.unchanged(shot) if result is None else watcher.read(shot, result)
            yield step  # after the slot went back: the caller may keep the step as long as it likes

    async def _ocr(
        self, prepared: Prepared, opts: OcrOptions, request_id: str | None, timeout: float | None, started: float
    ) -> ClientResult:
        """The one place that chooses between the transports."""
        session = await self._session_or_none()
        if session is None and self.mode is Mode.SHM:
            raise self._no_session_error()
        failed: SessionFailure | None = None
        if session is not None:
            call = OcrCall(prepared, opts, request_id, timeout or self.timeouts.session_timeout)
            try:
                return shape_result(await session.handle(call), "shared_memory", started)
            except SessionFailure as failure:
                await self._lost(session, failure)
                if self.mode is Mode.SHM:
                    raise failure.error from None
                failed = failure
        label = "http_fallback" if failed is not None else self._http_label()
        call = OcrCall(prepared, opts, request_id, timeout or self.timeouts.request, label == "http_fallback")
        try:
            result = await self._http.handle(call)
        except ShmBridgeError as exc:
            if failed is not None:
                exc.add_note(f"shared memory failed first: {type(failed.error).__name__}: {failed.error}")
            raise
        return shape_result(result, label, started, self._fallback_warning(failed))

    # -- service -----------------------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``/health``; see ``Client.health``."""
        self._check_open()
        return await self._http.get_json(HEALTH_PATH, accept=(200, 503))

    async def info(self) -> dict[str, Any]:
        """``/api/v1/bridge/info``, or the session's WELCOME when HTTP is off; see ``Client.info``."""
        self._check_open()
        try:
            return await self._http.get_json(INFO_PATH)
        except ShmBridgeError:
            session = self._session
            if session is None or not session.connected:
                raise
            return info_from_welcome(session.session.welcome, self.socket_path)

    async def diagnose(self) -> Diagnosis:
        """Test each step to the service (URL, socket, peer check, handshake, a test frame) and say why shared
        memory would not be used, if it would not. Uses its own connections: this client is not changed."""
        self._check_open()
        return await diagnose_async(self)

    async def metrics(self) -> dict[str, Any]:
        """``/metrics/enhanced``; see ``Client.metrics``."""
        self._check_open()
        return await self._http.get_json(ENHANCED_METRICS_PATH)

    # -- the session ---------------------------------------------------------------------------------------

    async def _session_or_none(self, *, wait: bool = False) -> AsyncSessionTransport | None:
        """The open session; else ``None`` (use HTTP) while the reconnect task works on it.

        ``wait`` (at open) and ``mode="shm"`` connect right here instead.
        """
        session = self._session
        if session is not None and session.connected:
            return session
        if self.mode is Mode.HTTP or self.state is not Lifecycle.OPENED:
            return None
        if session is not None:
            await self._lost(session, SessionFailure(ServiceUnavailable("the session ended"), broken=True))
        if self._discovered_none:
            return None
        if wait or self.mode is Mode.SHM:
            async with self._connect_lock:
                current = self._session
                if current is not None and current.connected:
                    return current
                connected = await self._connect()
            if connected is None:
                self._schedule_reconnect()
            return connected
        self._schedule_reconnect()
        return None

    def _schedule_reconnect(self) -> None:
        if self.mode is not Mode.AUTO or self.state is not Lifecycle.OPENED or self._discovered_none:
            return
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(
                self._reconnect_loop(), name="shmbridge-reconnect"
            )

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

    async def _connect(self) -> AsyncSessionTransport | None:
        path = await self._resolve_socket()
        if path is None:
            return None
        try:
            session = await AsyncSessionClient(path, timeout=self.timeouts.connect).connect()
        except ShmBridgeError as exc:
            self._note_session_refused(exc)
            return None
        if self.state is Lifecycle.CLOSED:
            await session.close()
            return None
        self._session = AsyncSessionTransport(session)
        self._note_session_opened()
        return self._session

    async def _resolve_socket(self) -> Path | None:
        if self.socket_path is not None:
            return self.socket_path
        try:
            info = await self._http.get_json(INFO_PATH, timeout=self.timeouts.connect)
        except ShmBridgeError as exc:
            self._note_session_refused(exc)
            return None
        self._discovery_done(socket_from_info(info))
        return self.socket_path

    async def _lost(self, session: AsyncSessionTransport, failure: SessionFailure) -> None:
        """Forget a broken session once and let the reconnect task bring a new one."""
        if not failure.broken or self._session is not session:
            return
        self._session = None
        await session.close()
        self._note_session_lost(failure.error)
        self._schedule_reconnect()
