"""``Client``: the blocking shell over ``base.BaseClient``, a session transport and an HTTP transport.

It owns one ``SessionClient`` (when shared memory works) and one pooled ``httpx.Client``, and is safe to share
between threads. It starts no thread: a lost session is reopened lazily. The first call after the backoff
clock (``RetryPolicy``: exponential, jittered) falls due tries to reconnect, while calls in other threads
keep going over HTTP instead of waiting for it. That is the simplest design that is correct here: nothing
runs after ``close()``, nothing needs joining, and an idle client costs nothing. In ``mode="shm"`` a call
with no session tries to connect at once and raises the typed error if it cannot.

Lock order: ``_connect_lock`` (one connecting thread) before ``_lock`` (lifecycle and the session reference);
neither is held during an OCR call.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..capture import Capture, Watcher, WatchFrame, grab_into_slot
from ..errors import ServiceUnavailable, ShmBridgeError, TransportError
from ..models import OcrOptions, PixelFormat, Roi, TextLine
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
from .diagnose import Diagnosis, diagnose
from .http import ENHANCED_METRICS_PATH, HEALTH_PATH, INFO_PATH, HttpTransport, stream_path
from .inputs import FrameRegistry, Prepared, prepare
from .session import SessionClient
from .shm import SessionTransport
from .streams import ClientStream


class Client(BaseClient):
    """Blocking OCR client: shared memory when it can, HTTP when it must. Thread-safe.

    ::

        with shmbridge.Client() as client:
            result = client.ocr("screenshot.png")               # decoded into shared memory once
            with client.frame(1080, 1920) as frame:              # zero-copy: render straight into a slot
                render(frame)
                result = client.ocr(frame)
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
        """``url`` defaults to ``$SHMBRIDGE_URL``, else ``http://127.0.0.1:8080``; ``socket`` to
        ``$SHMBRIDGE_SOCKET_PATH``, else the socket the service advertises."""
        super().__init__(url, socket=socket, mode=mode, timeout=timeout, retry=retry)
        self._http = HttpTransport(self.url, self.timeouts, self.retry)
        self._session: SessionTransport | None = None
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._frames = FrameRegistry()

    # -- lifecycle -----------------------------------------------------------------------------------------

    def open(self) -> Client:
        """Discover the socket and open the session now (calls do this themselves when needed)."""
        with self._lock:
            if not self._check_open():
                return self
            self.state = Lifecycle.OPENED
        if self.mode is not Mode.HTTP:
            self._session_or_none()
        return self

    def close(self) -> None:
        """Close the session and the HTTP pool. Safe to call twice; later calls raise ``UsageError``."""
        with self._lock:
            if self.state is Lifecycle.CLOSED:
                return
            self.state = Lifecycle.CLOSED
            session, self._session = self._session, None
        if session is not None:
            session.close()
        self._screens.close()
        self._http.close()

    def __enter__(self) -> Client:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def session_active(self) -> bool:
        """True while calls go over shared memory."""
        session = self._session
        return session is not None and session.connected

    # -- OCR ---------------------------------------------------------------------------------------------------

    def ocr(
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
        if self._check_open():
            self.open()
        image, pixel_format, noted = unwrap_capture(image, pixel_format)
        opts = build_options(options, **option_fields)
        result = self._ocr(prepare(image, pixel_format, self._frames), opts, request_id, timeout, started)
        return with_warnings(result, noted) if noted else result

    def stream(self, name: str, *, delta: bool = False, **option_fields: Any) -> ClientStream:
        """A screen stream: ``with client.stream("screen") as s: s.ocr(frame)`` reads each frame as the
        next of the stream ``name``, so the service reads again only what changed since the previous frame
        (``result.stream`` says what it did; ``delta=True`` lists the lines added and removed). The first
        frame is read whole. ``option_fields`` go with every frame. The same as
        ``client.ocr(frame, stream=name)`` with a keyframe first and a close at the end."""
        return ClientStream(self, name, delta, option_fields)

    def close_stream(self, name: str) -> bool:
        """Free the stream ``name`` on the service now, where HTTP carried it; True if one was freed. A
        session's streams are freed when the session ends; with HTTP unreachable this does nothing."""
        self._check_open()
        try:
            return bool(self._http.send("DELETE", stream_path(name), self.timeouts.request).json().get("closed"))
        except TransportError:
            return False

    def ocr_batch(self, images: Iterable[Any], **options: Any) -> list[ClientResult]:
        """OCR several images, one after another. For concurrency share the client between threads, or use
        ``AsyncClient``."""
        return [self.ocr(image, **options) for image in images]

    def detect_text(self, image: Any, **options: Any) -> list[TextLine]:
        """Only the text regions (text, confidence, box in pixels, top-left origin) of ``image``."""
        return self.ocr(image, **options).lines

    @contextlib.contextmanager
    def frame(
        self, height: int, width: int, channels: int = 3, *, timeout: float | None = None
    ) -> Iterator[np.ndarray]:
        """A writable H×W(×C) uint8 array in shared memory; ``client.ocr(frame)`` sends it by reference.

        Render into it in place, then OCR it (crops of it travel by reference too). With no session (HTTP
        mode, or shared memory unavailable in auto mode) it is a plain numpy array and ``ocr`` sends its
        bytes over HTTP. Waits up to ``timeout`` for a free slot, then raises ``RequestTimeout``.
        """
        if self._check_open():
            self.open()
        session = self._session_or_none()
        lease = None
        if session is not None:
            try:
                lease = session.lease_frame(height, width, channels, timeout or self.timeouts.session_timeout)
            except SessionFailure as failure:
                self._lost(session, failure)
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

    @contextlib.contextmanager
    def capture(
        self,
        region: Roi | tuple[int, int, int, int] | None = None,
        *,
        display: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Capture]:
        """The screen (or ``region`` of it, x, y, width, height) in a slot, written there by the X server.

        ``client.ocr(capture)`` then sends it by reference: no one copies the pixels (MIT-SHM 1.2 with a
        memfd). Where the display cannot do that (no MIT-SHM, a remote display) or there is no session, the
        pixels are copied through the X socket, and the capture and its result's ``warnings`` say so. The
        display is ``display`` or ``$DISPLAY``. Needs the ``capture`` extra (xcffib) and libxcb-shm.
        """
        screen = self._screens.get(display)
        roi = screen.region(region)
        with self.frame(roi.height, roi.width, 4, timeout=timeout) as array:
            lease = self._frames.find(array)
            yield grab_into_slot(screen, array, roi, lease.segment if lease is not None else None)

    def watch(
        self,
        interval: float = 1.0,
        *,
        region: Roi | tuple[int, int, int, int] | None = None,
        display: str | None = None,
        stream: str | None = "screen",
        frames: int | None = None,
        **option_fields: Any,
    ) -> Iterator[WatchFrame]:
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
            time.sleep(watcher.delay())
            with self.capture(region, display=display) as shot:
                fresh = watcher.needs_ocr(shot)
                result = self.ocr(shot, **watcher.options(option_fields)) if fresh else None
                step = watcher.unchanged(shot) if result is None else watcher.read(shot, result)
            yield step  # after the slot went back: the caller may keep the step as long as it likes

    def _ocr(
        self, prepared: Prepared, opts: OcrOptions, request_id: str | None, timeout: float | None, started: float
    ) -> ClientResult:
        """The one place that chooses between the transports."""
        session = self._session_or_none()
        if session is None and self.mode is Mode.SHM:
            raise self._no_session_error()
        failed: SessionFailure | None = None
        if session is not None:
            call = OcrCall(prepared, opts, request_id, timeout or self.timeouts.session_timeout)
            try:
                return shape_result(session.handle(call), "shared_memory", started)
            except SessionFailure as failure:
                self._lost(session, failure)
                if self.mode is Mode.SHM:
                    raise failure.error from None
                failed = failure
        label = "http_fallback" if failed is not None else self._http_label()
        call = OcrCall(prepared, opts, request_id, timeout or self.timeouts.request, label == "http_fallback")
        try:
            result = self._http.handle(call)
        except ShmBridgeError as exc:
            if failed is not None:
                exc.add_note(f"shared memory failed first: {type(failed.error).__name__}: {failed.error}")
            raise
        return shape_result(result, label, started, self._fallback_warning(failed))

    # -- service -----------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``/health``: ``ready`` is False (HTTP 503) while the service starts or shuts down."""
        self._check_open()
        return self._http.get_json(HEALTH_PATH, accept=(200, 503))

    def info(self) -> dict[str, Any]:
        """``/api/v1/bridge/info`` (modes, socket, protocol version, limits, engine); from the session's
        WELCOME when HTTP is off."""
        self._check_open()
        try:
            return self._http.get_json(INFO_PATH)
        except ShmBridgeError:
            session = self._session
            if session is None or not session.connected:
                raise
            return info_from_welcome(session.session.welcome, self.socket_path)

    def diagnose(self) -> Diagnosis:
        """Test each step to the service (URL, socket, peer check, handshake, a test frame) and say why shared
        memory would not be used, if it would not. Uses its own connections: this client is not changed."""
        self._check_open()
        return diagnose(self)

    def metrics(self) -> dict[str, Any]:
        """``/metrics/enhanced``: counters by mode, latency percentiles, zero-copy and fallback ratios."""
        self._check_open()
        return self._http.get_json(ENHANCED_METRICS_PATH)

    # -- the session ---------------------------------------------------------------------------------------

    def _session_or_none(self) -> SessionTransport | None:
        """The open session, or a fresh one if a reconnect is due, or ``None`` (use HTTP)."""
        session = self._session
        if session is not None and session.connected:
            return session
        if self.mode is Mode.HTTP:
            return None
        if session is not None:
            self._lost(session, SessionFailure(ServiceUnavailable("the session ended"), broken=True))
        if self._discovered_none:
            return None
        if self.mode is Mode.SHM:
            self._connect_lock.acquire()  # shm mode waits for a connecting thread; auto mode uses HTTP meanwhile
        elif not self._connect_lock.acquire(blocking=False):
            return None
        try:
            current = self._session
            if current is not None and current.connected:
                return current
            if self.mode is Mode.AUTO and not self._clock.due():
                return None
            return self._connect()
        finally:
            self._connect_lock.release()

    def _connect(self) -> SessionTransport | None:
        path = self._resolve_socket()
        if path is None:
            return None
        try:
            session = SessionClient(path, timeout=self.timeouts.connect).connect()
        except ShmBridgeError as exc:
            self._note_session_refused(exc)
            return None
        transport = SessionTransport(session)
        with self._lock:
            if self.state is Lifecycle.CLOSED:
                session.close()
                return None
            self._session = transport
        self._note_session_opened()
        return transport

    def _resolve_socket(self) -> Path | None:
        """The configured socket, else the one ``/api/v1/bridge/info`` advertises (asked once it answers)."""
        if self.socket_path is not None:
            return self.socket_path
        try:
            info = self._http.get_json(INFO_PATH, timeout=self.timeouts.connect)
        except ShmBridgeError as exc:
            self._note_session_refused(exc)  # HTTP down too: ask again when the clock is due
            return None
        found = socket_from_info(info)
        self._discovery_done(found)
        return self.socket_path

    def _lost(self, session: SessionTransport, failure: SessionFailure) -> None:
        """Forget a broken session (once, whichever thread notices first); the clock schedules the reconnect."""
        if not failure.broken:
            return
        with self._lock:
            if self._session is not session:
                return
            self._session = None
        session.close()
        self._note_session_lost(failure.error)
