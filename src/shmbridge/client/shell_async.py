"""Everything ``AsyncClient`` does but wait for a session its own way: every call, written once for both clients.

``shell.py`` is generated from ``shell_async.py`` by ``scripts/unasync.py`` (coroutine keywords
dropped, ``Async*`` names made blocking), so the two clients cannot drift: edit ``shell_async.py`` only, and
run the script (a test fails while the generated file is stale). ``AsyncClientShell`` owns the public calls
(``ocr``, ``stream``, ``frame``, ``capture``, ``watch``, ``close_stream``, ``detect_text``, ``health``,
``info``, ``metrics``, ``diagnose``), the one place that chooses between the transports (``_ocr``), opening
and closing, connecting a session (``_connect``) and forgetting a lost one (``_lost``); ``AsyncClientStream``
is the handle ``stream()`` returns, over ``streams.StreamRules``.

Each client adds only what really differs, in ``sync_client.py`` and ``async_client.py``: how it waits for
a session (``_session_or_none``, ``_open_session``, ``_reconnect_later``, ``_stop_reconnecting``) and
``ocr_batch``, whose concurrency differs. This module must never decide policy (``base`` does), speak a
transport's protocol (``shm`` and ``http`` do), or hold ``_lock`` while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

import numpy as np

from ..capture import Capture, Watcher, WatchFrame, grab_into_slot
from ..errors import ShmBridgeError, TransportError
from ..models import DEFAULT_OPTIONS, OcrOptions, PixelFormat, Roi, TextLine
from .base import (
    BaseClient,
    ClientResult,
    Lifecycle,
    OcrCall,
    SessionFailure,
    TransportPolicy,
    build_options,
    info_from_welcome,
    shape_result,
    socket_from_info,
    timed,
    with_warnings,
)
from .diagnose import Diagnosis, diagnose_async
from .http_base import ENHANCED_METRICS_PATH, HEALTH_PATH, INFO_PATH, stream_path
from .http_transport_async import AsyncHttpTransport
from .inputs import Prepared, prepare
from .shm_async import AsyncSessionTransport
from .streams import StreamRules

_OPENED = Lifecycle.OPENED


class AsyncClientShell(BaseClient):
    """The calls of ``AsyncClient`` (see this module's docstring); the subclass says how it waits."""

    _http: AsyncHttpTransport
    _session: AsyncSessionTransport | None

    def _make_transports(self) -> None:
        self._http = AsyncHttpTransport(self.url, self.timeouts, self.retry)
        self._session = None

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def open(self) -> Self:
        """Discover the socket and open the session now (calls do this themselves when needed)."""
        with self._lock:
            if not self._check_open():
                return self
            self.state = Lifecycle.OPENED
        if self.transport_policy is not TransportPolicy.HTTP:
            await self._open_session()
        return self

    async def close(self) -> None:
        """Close the session and the HTTP pool; nothing reconnects afterwards. Safe to call twice; later calls
        raise ``UsageError``."""
        with self._lock:
            if self.state is Lifecycle.CLOSED:
                return
            self.state = Lifecycle.CLOSED
            session, self._session = self._session, None
        await self._stop_reconnecting()
        if session is not None:
            await session.close()
        self._screens.close()
        await self._http.close()

    async def __aenter__(self) -> Self:
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
        """OCR one image: a numpy array, PIL image, path, PNG/JPEG bytes, or a frame from ``frame()``.

        A frame travels by reference; anything else is copied (or decoded) into a slot once. Options are
        ``recognition_level``, ``languages``, ``custom_words``, ``minimum_text_height`` and ``roi``.
        """
        started = time.perf_counter()
        if self.state is not _OPENED and self._check_open():
            await self.open()
        if option_fields:
            options = build_options(options, **option_fields)
        elif options is None:
            options = DEFAULT_OPTIONS
        frame = self._frames.ref(image) if pixel_format is None else None  # from frame(), checked when lent
        if frame is not None:
            return await self._ocr(frame, options, request_id, timeout, started)
        noted = None
        if isinstance(image, Capture):  # its frame, BGRA, and why it was copied, if it was
            image, pixel_format, noted = image.array, image.pixel_format, image.warnings
        result = await self._ocr(prepare(image, pixel_format, self._frames), options, request_id, timeout, started)
        return with_warnings(result, noted) if noted else result

    def stream(self, name: str, *, delta: bool = False, **option_fields: Any) -> AsyncClientStream:
        """A screen stream: ``async with client.stream("screen") as s: await s.ocr(frame)`` reads each frame as
        the next of the stream ``name``, so the service reads again only what changed since the previous
        frame (``result.stream`` says what it did; ``delta=True`` lists the lines added and removed). The
        first frame is read whole. ``option_fields`` go with every frame. The same as
        ``await client.ocr(frame, stream=name)`` with a keyframe first and a close at the end."""
        return AsyncClientStream(self, name, delta, option_fields)

    async def close_stream(self, name: str) -> bool:
        """Free the stream ``name`` on the service now, where HTTP carried it; True if one was freed. A
        session's streams are freed when the session ends; with HTTP unreachable this does nothing."""
        self._check_open()
        try:
            response = await self._http.send("DELETE", stream_path(name), self.timeouts.request)
        except TransportError:
            return False
        return bool(response.json().get("closed"))

    async def detect_text(self, image: Any, **options: Any) -> list[TextLine]:
        """Only the text regions (text, confidence, box in pixels, top-left origin) of ``image``."""
        result = await self.ocr(image, **options)
        return result.lines

    @contextlib.asynccontextmanager
    async def frame(
        self, height: int, width: int, channels: int = 3, *, timeout: float | None = None
    ) -> AsyncIterator[np.ndarray]:
        """A writable H×W(×C) uint8 array in shared memory; ``await client.ocr(frame)`` sends it by reference.

        Render into it in place, then OCR it (crops of it travel by reference too). With no session (HTTP
        mode, or shared memory unavailable in auto mode) it is a plain numpy array and ``ocr`` sends its
        bytes over HTTP. Waits up to ``timeout`` for a free slot, then raises ``RequestTimeout``.
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
                if self.transport_policy is TransportPolicy.SHM:
                    raise failure.error from None
        elif self.transport_policy is TransportPolicy.SHM:
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
        """The screen (or ``region`` of it, x, y, width, height) in a slot, written there by the X server.

        ``await client.ocr(capture)`` then sends it by reference: no one copies the pixels (MIT-SHM 1.2 with
        a memfd). Where the display cannot do that (no MIT-SHM, a remote display) or there is no session,
        the pixels are copied through the X socket, and the capture and its result's ``warnings`` say so.
        The display is ``display`` or ``$DISPLAY``. Needs the ``capture`` extra (xcffib) and libxcb-shm.
        """
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
        """Capture and OCR the screen at most once per ``interval`` seconds, yielding each step's changes.

        An unchanged screen costs a capture and a digest of its pixels, no OCR: its step has
        ``changed=False``. Each step's ``added`` and ``removed`` are the lines that appeared and went since
        the previous step (the first step adds every line); ``result`` always describes the whole region.
        ``frames`` bounds the number of steps (default: until the caller stops iterating). Each read goes
        through the screen stream ``stream``, so the service reads again only what changed and says which
        lines came and went (``None``: every read is a full one, and the client diffs the lines itself).
        OCR options (``languages``, ``recognition_level``...) go to every read.
        """
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
        session = self._session
        if session is None or not session.session.connected:  # an open session is taken as it is: no wait
            session = await self._session_or_none()
        if session is None and self.transport_policy is TransportPolicy.SHM:
            raise self._no_session_error()
        failed: SessionFailure | None = None
        if session is not None:
            call = OcrCall(prepared, opts, request_id, timeout or self._session_budget)
            try:
                return timed(await session.handle(call), started)
            except SessionFailure as failure:
                await self._lost(session, failure)
                if self.transport_policy is TransportPolicy.SHM:
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
        """``/health``: ``ready`` is False (HTTP 503) while the service starts or shuts down."""
        self._check_open()
        return await self._http.get_json(HEALTH_PATH, accept=(200, 503))

    async def info(self) -> dict[str, Any]:
        """``/api/v1/bridge/info`` (modes, socket, protocol version, limits, engine); from the session's
        WELCOME when HTTP is off."""
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
        """``/metrics/enhanced``: counters by mode, latency percentiles, zero-copy and fallback ratios."""
        self._check_open()
        return await self._http.get_json(ENHANCED_METRICS_PATH)

    # -- the session: what each client does its own way ---------------------------------------------------

    async def _session_or_none(self) -> AsyncSessionTransport | None:
        """The open session, else ``None`` (use HTTP); connects or schedules a reconnect as the client does."""
        raise NotImplementedError

    async def _open_session(self) -> None:
        """At ``open()``: the first session, now."""
        raise NotImplementedError

    def _reconnect_later(self) -> None:
        """A session was lost or could not be had: see that a later one is tried."""
        raise NotImplementedError

    async def _stop_reconnecting(self) -> None:
        """At ``close()``: nothing may try to connect any more."""
        raise NotImplementedError

    # -- the session: what both do -------------------------------------------------------------------------

    async def _connect(self) -> AsyncSessionTransport | None:
        """Open a session on the socket (found first if need be); ``None`` when there is none to be had."""
        path = await self._resolve_socket()
        if path is None:
            return None
        try:
            transport = await AsyncSessionTransport.connect(path, self.timeouts.connect)
        except ShmBridgeError as exc:
            self._note_session_refused(exc)
            return None
        with self._lock:
            closed = self.state is Lifecycle.CLOSED
            if not closed:
                self._session = transport
        if closed:
            await transport.close()
            return None
        self._note_session_opened()
        return transport

    async def _resolve_socket(self) -> Path | None:
        """The configured socket, else the one ``/api/v1/bridge/info`` advertises (asked once it answers)."""
        if self.socket_path is not None:
            return self.socket_path
        try:
            info = await self._http.get_json(INFO_PATH, timeout=self.timeouts.connect)
        except ShmBridgeError as exc:
            self._note_session_refused(exc)  # HTTP down too: ask again when the clock is due
            return None
        self._discovery_done(socket_from_info(info))
        return self.socket_path

    async def _lost(self, session: AsyncSessionTransport, failure: SessionFailure) -> None:
        """Forget a broken session (once, whoever notices first); the backoff clock times the reconnect."""
        if not failure.broken:
            return
        with self._lock:
            if self._session is not session:
                return
            self._session = None
        await session.close()
        self._note_session_lost(failure.error)
        self._reconnect_later()


class AsyncClientStream(StreamRules):
    """A stream of frames through a client; see ``AsyncClient.stream``."""

    def __init__(self, client: AsyncClientShell, name: str, delta: bool, options: dict[str, Any]) -> None:
        super().__init__(name, delta, options)
        self._client = client

    async def ocr(
        self, image: Any, *, keyframe: bool = False, delta: bool | None = None, **option_fields: Any
    ) -> ClientResult:
        """OCR ``image`` as the stream's next frame: only what changed since the previous one is read again.
        ``result.stream`` says what the service did; ``lines`` and ``text`` describe the whole frame."""
        return await self._client.ocr(image, **self.fields(keyframe, delta, option_fields))

    async def close(self) -> None:
        """Free the stream on the service now where HTTP carried it (``close_stream``); later frames raise."""
        if not self.closed:
            self.closed = True
            await self._client.close_stream(self.name)

    async def __aenter__(self) -> AsyncClientStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
