"""What every HTTP route shares: the service objects, request ids, client ids, body reading and decoding.

``HttpContext`` is built once by ``app.create_app`` and handed to each router factory, so routes
never reach into globals. It owns the decode gate (CPU work done before admission is bounded too) and the
one helper that turns encoded bytes into an ``OcrResult``. It must never hold pixels past a request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from ...config import ServiceConfig
from ...errors import Busy, ErrorCode, FrameTooLarge, InvalidRequest, RequestTimeout, ShmBridgeError
from ...memory import MemoryBudget
from ...models import OcrOptions, OcrResult
from ...wire import FALLBACK_HEADER
from ..core import ServiceCore
from ..sessions import SessionServer
from ..streaming import StreamOwner
from .images import Decoded
from .regions import RegionRegistry

T = TypeVar("T")

#: Header naming the client for region quotas; without it the client is its remote address.
CLIENT_HEADER = "x-shmbridge-client"
REQUEST_ID_HEADER = "x-request-id"
_MAX_ID = 128


class DecodeGate:
    """At most ``permits`` decodes run at once (in worker threads); at most ``queue_size`` wait.

    Decoding happens before the core's admission, so without this gate a burst of large PNGs would
    decode all at once. Beyond the queue a caller gets ``Busy``, exactly as from the core. A decode that
    takes longer than ``decode_timeout`` is answered at once with 413 (the image is too costly to read);
    a thread cannot be stopped, so it keeps its permit until it really returns, and hostile images can
    hold at most ``permits`` threads.
    """

    def __init__(
        self, permits: int, queue_size: int, timeout: float, retry_after: float, decode_timeout: float = 5.0
    ) -> None:
        self._semaphore = asyncio.Semaphore(permits)
        self._queue_size = queue_size
        self._timeout = timeout
        self._retry_after = retry_after
        self._decode_timeout = decode_timeout
        self._waiting = 0

    async def run(self, work: Callable[[], T]) -> T:
        if self._semaphore.locked():
            if self._waiting >= self._queue_size:
                raise Busy("too many images are being decoded; try again later", retry_after=self._retry_after)
            self._waiting += 1
            try:
                await asyncio.wait_for(self._semaphore.acquire(), self._timeout)
            except TimeoutError:
                raise RequestTimeout(f"no decoder became free within {self._timeout}s") from None
            finally:
                self._waiting -= 1
        else:
            await self._semaphore.acquire()
        try:
            job = asyncio.ensure_future(asyncio.to_thread(work))
        except BaseException:
            self._semaphore.release()
            raise
        job.add_done_callback(self._job_done)  # the permit goes back when the thread does
        try:
            return await asyncio.wait_for(asyncio.shield(job), self._decode_timeout)
        except TimeoutError:
            raise FrameTooLarge(
                f"the image took more than {self._decode_timeout:g} s to decode; send a simpler one "
                "(one frame, fewer pixels) or raw pixels"
            ) from None

    def _job_done(self, job: asyncio.Future[object]) -> None:
        self._semaphore.release()
        if not job.cancelled():
            job.exception()  # retrieved: a late failure after a timeout is not "never retrieved"


@dataclass
class HttpContext:
    """The service objects the HTTP routes use."""

    core: ServiceCore
    sessions: SessionServer | None
    budget: MemoryBudget
    regions: RegionRegistry
    gate: DecodeGate
    started_at: float = field(default_factory=time.time)

    @property
    def config(self) -> ServiceConfig:
        return self.core.config

    @property
    def json_body_limit(self) -> int:
        """Largest JSON body: one frame's worth of base64 plus room for the other fields."""
        return self.config.max_frame_bytes * 4 // 3 + self.config.max_control_frame

    def count_fallback(self, request: Request) -> bool:
        """Count a request the client marked as a shared-memory fallback."""
        if request.headers.get(FALLBACK_HEADER, "").strip().lower() in {"1", "true", "yes"}:
            self.core.metrics.count_fallback()
            return True
        return False

    def observe_error(self, mode: str, exc: ShmBridgeError) -> None:
        """Count a request that failed before it reached the core (bad body, undecodable image)."""
        self.core.metrics.observe(mode, exc.code.name.lower())

    async def ocr_encoded(
        self,
        decode: Callable[[], Decoded],
        options: OcrOptions,
        *,
        mode: str,
        request_id: str,
        stream_owner: StreamOwner | None = None,
    ) -> OcrResult:
        """Decode (bounded, off the loop), then OCR through the core. Every error is a ``ShmBridgeError``."""
        started = time.perf_counter()
        try:
            decoded = await self.gate.run(decode)
        except ShmBridgeError as exc:
            self.observe_error(mode, exc)
            raise
        decode_s = time.perf_counter() - started  # includes any wait for a decode permit
        result = await self.core.process(
            decoded.image,
            decoded.pixel_format,
            options,
            mode=mode,
            request_id=request_id,
            received_bytes=decoded.encoded_bytes,
            copied_bytes=decoded.image.nbytes,  # decoding wrote these pixels anew
            decode_s=decode_s,
            stream_owner=stream_owner,
        )
        if decoded.warnings:
            result.warnings.extend(decoded.warnings)
        return result


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def request_id_of(request: Request, given: str | None = None) -> str:
    """The id a client gave (body or query), else its ``X-Request-Id`` header, else a fresh one."""
    candidate = given or request.headers.get(REQUEST_ID_HEADER)
    if candidate:
        return candidate[:_MAX_ID]
    return new_request_id()


def tag_request(request: Request, response: Response, request_id: str) -> str:
    """Remember the id for error answers and echo it as ``X-Request-Id`` when a header can carry it."""
    request.state.request_id = request_id
    if request_id.isascii() and request_id.isprintable():
        response.headers["X-Request-Id"] = request_id
    return request_id


def stream_owner_of(request: Request) -> StreamOwner:
    """Whose streams an HTTP request's ``stream=NAME`` names: its client key (``client_of``)."""
    return StreamOwner("http", client_of(request))


def client_of(request: Request) -> str:
    """Who a region or a stream belongs to, for quotas: the ``X-Shmbridge-Client`` header, else the remote
    address.

    This is a quota key, not authentication: anyone who can reach the HTTP port can send any header.
    """
    named = request.headers.get(CLIENT_HEADER, "").strip()
    if named:
        return named[:_MAX_ID]
    return request.client.host if request.client else "unknown"


async def read_body(request: Request, limit: int) -> bytes | bytearray:
    """The whole body, at most ``limit`` bytes, in one buffer that grows as the bytes arrive.

    Nothing is allocated on a ``Content-Length`` alone: a client that announces 128 MiB and stalls holds
    what it sent, and the bytes held over all requests are bounded by the body budget
    (``body_budget``). The limit was already enforced on the header by the body-limit middleware, and is
    checked again here.
    """
    declared = request.headers.get("content-length")
    length: int | None = None
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise InvalidRequest(f"bad Content-Length {declared!r}") from None
        if length > limit:
            raise FrameTooLarge(f"a {length}-byte body exceeds the limit of {limit} bytes")
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk  # grows geometrically: amortised, no list of chunks to join at the end
        if length is not None and len(buffer) > length:
            raise InvalidRequest("the body is longer than its Content-Length")
        if len(buffer) > limit:
            raise FrameTooLarge(f"the body exceeds {limit} bytes")
    if length is not None and len(buffer) != length:
        raise InvalidRequest(f"the body ended after {len(buffer)} of {length} bytes", code=ErrorCode.SHAPE_MISMATCH)
    return buffer
