"""The service core: admission, engine execution, timeouts and metrics, shared by every transport.

A transport hands ``ServiceCore.process`` a pixel view, its format, options and a mode label, and gets an
``OcrResult`` or a typed error. The core never knows where the pixels live. Rules it keeps:

- at most ``in_flight_limit`` requests run at once; at most ``queue_size`` wait; more get ``Busy``;
- every wait is bounded (``request_timeout`` for admission, ``engine_timeout`` for the engine);
- an engine timeout answers the caller at once, but the pixels stay borrowed until the engine thread
  really returns: ``on_release`` is called only then, so a transport never unmaps memory under a
  running engine.

The engine instances are the pool's (``engine_pool``); a request that names a screen stream is read
through ``streaming``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from ..config import ServiceConfig
from ..engines import EngineOutput
from ..engines.pixels import convert, crop, validate_image
from ..engines.results import shift_lines
from ..environment import limit_hint
from ..errors import (
    Busy,
    EngineError,
    EngineTimeout,
    ErrorCode,
    FrameTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    ShmBridgeError,
)
from ..models import DEFAULT_OPTIONS, OcrOptions, OcrResult, PixelFormat
from .engine_pool import EnginePool, EngineWork
from .metrics import Metrics
from .streaming import StreamOwner, StreamReads, stream_in_frame

log = logging.getLogger("shmbridge.core")


class ServiceCore:
    """Admission, engine execution and metrics for every transport."""

    def __init__(self, config: ServiceConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.pool = EnginePool(config.engine, config.engine_options, config.engine_workers)
        self.streams = StreamReads(config, self.metrics)
        self._slots = asyncio.Semaphore(config.in_flight_limit)
        self._waiting = 0
        self._in_flight = 0
        self._accepting = True
        self._idle = asyncio.Event()
        self._idle.set()
        self.started_at = time.time()
        self.last_error: str | None = None
        self.ready = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.warm_up:
            await asyncio.get_running_loop().run_in_executor(None, self.pool.warm_up)
        self.ready = True

    def withdraw_readiness(self) -> None:
        """Shutdown began: ``/health`` answers 503 from now on, while requests are still admitted until
        ``stop_accepting`` (the transports close their doors in between)."""
        self.ready = False

    def stop_accepting(self) -> None:
        self._accepting = False
        self.ready = False

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.pool.close()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return self._waiting

    # -- the one entry point -----------------------------------------------------------------------

    def check_frame_size(self, height: int, width: int, channels: int) -> None:
        """Reject frames over the configured pixel or byte limits before touching them."""
        pixels = height * width
        if pixels > self.config.max_pixels:
            raise FrameTooLarge(
                f"{width}x{height} is {pixels} pixels; the limit is {self.config.max_pixels} "
                f"({limit_hint('max_pixels')})"
            )
        if pixels * channels > self.config.max_frame_bytes:
            raise FrameTooLarge(
                f"{width}x{height}x{channels} is {pixels * channels} bytes; the limit is "
                f"{self.config.max_frame_bytes} ({limit_hint('max_frame_bytes')})"
            )

    @property
    def inline(self) -> bool:
        """True when the engine never blocks: requests then run start to end on the caller's thread."""
        return not self.pool.blocking

    def process_inline(
        self,
        image: np.ndarray,
        pixel_format: PixelFormat,
        options: OcrOptions = DEFAULT_OPTIONS,
        *,
        mode: str,
        request_id: str | None = None,
        received_bytes: int | None = None,
        copied_bytes: int = 0,
        decode_s: float = 0.0,
        stream_owner: StreamOwner | None = None,
    ) -> OcrResult:
        """The whole request synchronously, for non-blocking engines (null): no admission wait, no thread
        hop, no task. It runs on the caller's thread (the event loop for HTTP, a session's own thread for
        sessions); the engine pool's instances are handed out one per caller, so callers never share one."""
        started = time.perf_counter()
        self.metrics.check_mode(mode)
        try:
            if not self._accepting:
                raise ServiceUnavailable("the service is shutting down", code=ErrorCode.SHUTTING_DOWN)
            work, copied = self._prepare(image, pixel_format, options, stream_owner)
            converted = time.perf_counter()
            output, engine_s = work()
            output.stages["convert"] = converted - started
            if decode_s:
                output.stages["decode"] = decode_s
            return self._succeed(output, options, request_id, image, mode, started, 0.0, engine_s,
                                 copied + copied_bytes, received_bytes)  # fmt: skip
        except ShmBridgeError as exc:
            self._record_failure(mode, exc, started)
            raise
        except Exception as exc:
            raise self._engine_failure(mode, request_id, exc, started) from exc

    async def process(
        self,
        image: np.ndarray,
        pixel_format: PixelFormat,
        options: OcrOptions = DEFAULT_OPTIONS,
        *,
        mode: str,
        request_id: str | None = None,
        received_bytes: int | None = None,
        copied_bytes: int = 0,
        on_release: Callable[[], None] | None = None,
        decode_s: float = 0.0,
        stream_owner: StreamOwner | None = None,
    ) -> OcrResult:
        """OCR ``image`` and return the shared result model; raise a ``ShmBridgeError`` otherwise.

        ``copied_bytes`` counts copies the transport already made (decoding an image makes new pixels);
        ``decode_s`` is the time the transport spent decoding it (reported as ``timings.decode_ms``).
        ``on_release`` is called exactly once, when no engine thread can touch ``image`` any more.
        ``stream_owner`` is whose streams ``options.stream`` names (a session, an HTTP client); without
        one, a request that names a stream is refused.
        """
        if self.inline:
            try:
                return self.process_inline(
                    image,
                    pixel_format,
                    options,
                    mode=mode,
                    request_id=request_id,
                    received_bytes=received_bytes,
                    copied_bytes=copied_bytes,
                    decode_s=decode_s,
                    stream_owner=stream_owner,
                )
            finally:
                if on_release is not None:
                    on_release()
        started = time.perf_counter()
        self.metrics.check_mode(mode)
        released = False

        def release() -> None:
            nonlocal released
            if not released and on_release is not None:
                released = True
                on_release()

        try:
            work, copied = self._prepare(image, pixel_format, options, stream_owner)
            convert_s = time.perf_counter() - started
            try:
                queue_s = await self._admit(started) - convert_s
            except asyncio.CancelledError:  # cancelled while queued: no engine thread has the pixels
                release()
                raise
            try:
                output, engine_s = await self._run_engine(work, release)
            finally:
                self._leave()
            release()
            output.stages["convert"] = convert_s
            if decode_s:
                output.stages["decode"] = decode_s
            return self._succeed(output, options, request_id, image, mode, started, queue_s, engine_s,
                                 copied + copied_bytes, received_bytes)  # fmt: skip
        except ShmBridgeError as exc:
            if not isinstance(exc, EngineTimeout):  # a timed-out engine thread releases when it ends
                release()
            self._record_failure(mode, exc, started)
            raise
        except Exception as exc:
            release()
            raise self._engine_failure(mode, request_id, exc, started) from exc

    def _prepare(
        self, image: np.ndarray, pixel_format: PixelFormat, options: OcrOptions, stream_owner: StreamOwner | None
    ) -> tuple[EngineWork, int]:
        """Validate, then the engine's work and the bytes copied to get it ready: for a plain request,
        the region of interest cropped (a view) and converted at most once; for a stream, the stream's
        step, which crops and converts each rectangle it reads itself."""
        validate_image(image, pixel_format)
        self.check_frame_size(image.shape[0], image.shape[1], pixel_format.channels)
        self.streams.check(options, stream_owner)
        if options.stream is not None:
            assert stream_owner is not None
            if options.roi is not None:
                options.roi.check_inside(image.shape[0], image.shape[1])
            return partial(self.streams.read, self.pool, image, pixel_format, options, stream_owner), 0
        view = crop(image, options.roi)
        native, native_format, copied = convert(view, pixel_format, self.pool.native_formats, self.pool.accepts_strides)
        return partial(self.pool.run_sync, native, native_format, options), copied

    def _succeed(
        self,
        output: EngineOutput,
        options: OcrOptions,
        request_id: str | None,
        image: np.ndarray,
        mode: str,
        started: float,
        queue_s: float,
        engine_s: float,
        copied: int,
        received_bytes: int | None,
    ) -> OcrResult:
        total_s = time.perf_counter() - started
        copied += output.bytes_copied
        result = self._assemble(output, options, request_id, image, queue_s, engine_s, total_s)
        received = image.nbytes if received_bytes is None else received_bytes
        self.metrics.observe(
            mode, "ok", queue_s=queue_s, engine_s=engine_s, total_s=total_s, received=received, copied=copied
        )
        self.metrics.observe_stages(self.pool.name, output.stages)
        return result

    def _record_failure(self, mode: str, exc: ShmBridgeError, started: float) -> None:
        self.metrics.observe(mode, exc.code.name.lower(), total_s=time.perf_counter() - started)
        if not isinstance(exc, Busy) and exc.http_status >= 500:
            self.last_error = f"{exc.code.name}: {exc.message}"

    def _engine_failure(self, mode: str, request_id: str | None, exc: Exception, started: float) -> EngineError:
        self.metrics.observe(mode, "engine_failed", total_s=time.perf_counter() - started)
        self.last_error = f"ENGINE_FAILED: {exc!r}"
        log.exception("engine failed on request %s", request_id)
        return EngineError(f"engine {self.pool.name} failed: {exc}")

    # -- internals ---------------------------------------------------------------------------------

    async def _admit(self, started: float) -> float:
        if not self._accepting:
            raise ServiceUnavailable("the service is shutting down", code=ErrorCode.SHUTTING_DOWN)
        if self._slots.locked():
            if self._waiting >= self.config.queue_size:
                raise Busy(
                    f"{self._in_flight} requests in flight and {self._waiting} queued; try again later",
                    retry_after=self.config.retry_after,
                )
            self._waiting += 1
            self.metrics.queued.set(self._waiting)
            try:
                await asyncio.wait_for(self._slots.acquire(), self.config.request_timeout)
            except TimeoutError:
                raise RequestTimeout(f"no engine became free within {self.config.request_timeout}s") from None
            finally:
                self._waiting -= 1
                self.metrics.queued.set(self._waiting)
        else:
            await self._slots.acquire()
        self._in_flight += 1
        self._idle.clear()
        self.metrics.in_flight.set(self._in_flight)
        return time.perf_counter() - started

    def _leave(self) -> None:
        self._slots.release()
        self._in_flight -= 1
        self.metrics.in_flight.set(self._in_flight)
        if self._in_flight == 0:
            self._idle.set()

    async def _run_engine(self, work: EngineWork, release: Callable[[], None]) -> tuple[EngineOutput, float]:
        """Run the engine's work; on timeout or cancellation, hand ``release`` to the still-running thread."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool.executor, work)
        try:
            output, engine_s = await asyncio.wait_for(asyncio.shield(future), self.config.engine_timeout)
        except TimeoutError:
            # The thread cannot be stopped: answer now, release the pixels when it really ends.
            future.add_done_callback(lambda _f: release())
            raise EngineTimeout(f"engine {self.pool.name} took longer than {self.config.engine_timeout}s") from None
        except asyncio.CancelledError:
            future.add_done_callback(lambda _f: release())
            raise
        return output, engine_s

    def _assemble(
        self,
        output: EngineOutput,
        options: OcrOptions,
        request_id: str | None,
        image: np.ndarray,
        queue_s: float,
        engine_s: float,
        total_s: float,
    ) -> OcrResult:
        lines = output.lines  # already in reading order (run_sync)
        if lines:
            if options.roi is not None:
                lines = shift_lines(lines, options.roi.x, options.roi.y)
            text = "\n".join(line.text for line in lines)
            confidence = sum(line.confidence for line in lines) / len(lines)
        else:
            lines, text, confidence = [], "", 0.0
        # Validation of a dict, not model_construct and not keyword arguments: pydantic-core validates a
        # dict in Rust, faster than ``OcrResult(**fields)`` (through ``BaseModel.__init__``) and than
        # model_construct, which assigns field by field in Python (docs/benchmarks.md, "Where the service's time goes").
        return OcrResult.model_validate(
            {
                "request_id": request_id,
                "text": text,
                "lines": lines,
                "confidence": confidence,
                "engine": self.pool.name,
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "timings": {
                    "queue_ms": queue_s * 1e3,
                    "engine_ms": engine_s * 1e3,
                    "total_ms": total_s * 1e3,
                    **{f"{stage}_ms": seconds * 1e3 for stage, seconds in output.stages.items()},
                },
                "warnings": output.warnings,
                "checksum": output.checksum,
                "stream": None if output.stream is None else stream_in_frame(output.stream, options.roi),
            }
        )
