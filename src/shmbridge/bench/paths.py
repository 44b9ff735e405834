"""The measured paths, one function each, and the connections they use inside one benchmark worker.

Each path function sends one frame and returns an ``Outcome``: the latency of exactly the part a caller
pays for on that path, the pixel bytes this client copied (or produced by encoding) for it, the bytes
it put on the wire, and the engine time the service reported. What each one times:

- ``legacy-json``: PNG encode (Pillow, ``compress_level`` 6 unless told) + base64 + JSON + POST
  ``/api/v1/vision/ocr`` + parsing the JSON answer; the old service's clients did exactly this;
- ``http-png``: PNG encode + POST of the PNG as the body of ``/api/v1/ocr``;
- ``http-raw``: ``tobytes()`` (httpx needs ``bytes``; one copy) + POST of raw RGB to ``/api/v1/ocr``;
- ``shm-region``: copy into this worker's file-backed region (an ``mmap`` of a file in the service's
  region dir) + POST ``/api/v1/shmem/ocr`` naming it;
- ``shm-copy``: ``SessionClient.ocr_copy`` (copy into a slot, submit, wait);
- ``shm-frame``: ``SessionClient.submit`` of a slot the frame was rendered into once, before timing: a
  producer renders into the slot instead of into its own buffer, so rendering is not a transport cost;
- ``iceoryx2``: the peer middleware's loan + send + wait (see ``iceoryx.py``), likewise without rendering.

Rules: nothing here decides how often to call a path or keeps statistics (``worker.py`` and
``runner.py`` do); every connection is opened lazily and closed by ``Endpoints.close``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import mmap
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
from PIL import Image

from ..client.session import SessionClient
from ..client.slots import SlotLease
from .iceoryx import IceoryxClient, IceoryxTarget
from .images import Size
from .service import ServiceHandle

PATHS = ("legacy-json", "http-png", "http-raw", "shm-region", "shm-copy", "shm-frame", "iceoryx2")
#: The service's metrics label for each path (``None``: not a shmbridge request).
MODES: dict[str, str | None] = {
    "legacy-json": "legacy",
    "http-png": "http_image",
    "http-raw": "http_raw",
    "shm-region": "shm_region",
    "shm-copy": "shm_session",
    "shm-frame": "shm_session",
    "iceoryx2": None,
}
#: What each path needs from the target: an HTTP URL, a socket, a region dir, the iceoryx2 helper.
NEEDS: dict[str, tuple[str, ...]] = {
    "legacy-json": ("url",),
    "http-png": ("url",),
    "http-raw": ("url",),
    "shm-region": ("url", "region_dir"),
    "shm-copy": ("socket_path",),
    "shm-frame": ("socket_path",),
    "iceoryx2": ("iceoryx",),
}
#: Engine-pass paths: the legacy door, the best HTTP door and the best shared-memory door.
ENGINE_PATHS = ("legacy-json", "http-raw", "shm-frame")
REQUEST_TIMEOUT = 120.0
#: Reconnect before a request when the connection idled this long (uvicorn closes idle ones after 5 s).
IDLE_RECONNECT = 3.0


class Outcome(NamedTuple):
    latency: float
    copied: int
    wire: int
    engine_ms: float | None
    checksum: str | None


class BenchError(RuntimeError):
    """A request the benchmark sent failed: the numbers would be meaningless, so the run stops."""


class Endpoints:
    """Everything one worker talks through. Not thread-safe: one per worker process."""

    def __init__(
        self, index: int, target: ServiceHandle, iceoryx: IceoryxTarget | None, region_bytes: int, png_level: int
    ) -> None:
        self.index = index
        self.target = target
        self.iceoryx_target = iceoryx
        self.region_bytes = region_bytes
        self.png_level = png_level
        self.client_id = f"bench-{os.getpid()}-w{index}"
        self._http: httpx.Client | None = None
        self._session: SessionClient | None = None
        self._leases: dict[Size, SlotLease] = {}
        self._region: tuple[str, Path, mmap.mmap, np.ndarray] | None = None
        self._iceoryx: IceoryxClient | None = None
        self._http_used = 0.0

    def refresh_http(self, max_idle: float = 2.0) -> None:
        """Replace a keep-alive connection idle for ``max_idle`` s, untimed, before a slice.

        uvicorn drops connections idle for 5 s; a request racing that close fails with a reset, and
        between two slices of one cell every other cell runs. A fresh connection (and one untimed
        request on it) keeps the reconnect out of the measurement and the race out of the run.
        """
        now = time.monotonic()
        if self._http is not None and now - self._http_used > max_idle:
            self._http.close()
            self._http = None
        if self._http is None:
            _check(self.http.get("/health"))
        self._http_used = now

    def mark_http_used(self) -> None:
        self._http_used = time.monotonic()

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST on the keep-alive connection, or on a new one if the old one idled long enough that the
        service may be closing it (a slow PNG encode under 16-way contention takes seconds): a client
        that idles that long pays the reconnect too, and a request racing the close would fail."""
        if self._http is not None and time.monotonic() - self._http_used > IDLE_RECONNECT:
            self._http.close()
            self._http = None
        response = self.http.post(url, **kwargs)
        self._http_used = time.monotonic()
        return response

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            if not self.target.url:
                raise BenchError("this path needs the service's HTTP URL")
            self._http = httpx.Client(base_url=self.target.url, timeout=REQUEST_TIMEOUT, trust_env=False)
        return self._http

    @property
    def session(self) -> SessionClient:
        if self._session is None:
            if not self.target.socket_path:
                raise BenchError("this path needs the service's socket")
            self._session = SessionClient(self.target.socket_path, timeout=REQUEST_TIMEOUT).connect()
        return self._session

    def frame_lease(self, size: Size, pixels: np.ndarray) -> SlotLease:
        """A slot held for the whole run with ``pixels`` rendered into it once (untimed)."""
        lease = self._leases.get(size)
        if lease is None:
            lease = self.session.acquire(size.nbytes)
            np.copyto(lease.frame(size.height, size.width, 3), pixels)
            self._leases[size] = lease
        return lease

    def region(self) -> tuple[str, np.ndarray]:
        """This worker's region: a file in the service's region dir, mapped writable, registered once."""
        if self._region is None:
            if not self.target.region_dir:
                raise BenchError("shm-region needs the service's region dir (--region-dir)")
            name = f"{self.client_id}-region"
            path = Path(self.target.region_dir) / name
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, self.region_bytes)
                mapping = mmap.mmap(fd, self.region_bytes)
            finally:
                os.close(fd)
            self._region = (name, path, mapping, np.frombuffer(mapping, dtype=np.uint8))
            response = self.http.post(
                "/api/v1/shmem/regions",
                json={"name": name, "offset": 0, "byte_size": self.region_bytes},
                headers={"X-Shmbridge-Client": self.client_id},
            )
            _check(response)
        return self._region[0], self._region[3]

    @property
    def iceoryx(self) -> IceoryxClient:
        if self._iceoryx is None:
            if self.iceoryx_target is None:
                raise BenchError("the iceoryx2 helper is not running")
            self._iceoryx = IceoryxClient(self.iceoryx_target, timeout=REQUEST_TIMEOUT)
        return self._iceoryx

    def close(self) -> None:
        """Unregister and remove the region, return leases, close every connection. Never raises."""
        if self._region is not None:
            name, path, mapping, view = self._region
            self._region = None
            if self._http is not None:
                with contextlib.suppress(httpx.HTTPError):
                    self._http.delete(f"/api/v1/shmem/regions/{name}")
            del view
            with contextlib.suppress(BufferError, ValueError):
                mapping.close()
            with contextlib.suppress(OSError):
                path.unlink()
        if self._session is not None:
            for lease in self._leases.values():
                with contextlib.suppress(Exception):
                    self._session.release(lease)
            self._leases.clear()
            self._session.close()
            self._session = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._iceoryx is not None:
            self._iceoryx.close()
            self._iceoryx = None


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise BenchError(f"{response.request.method} {response.request.url.path}: {response.status_code} "
                         f"{response.text[:300]}")  # fmt: skip
    return dict(response.json())


def _engine_ms(answer: dict[str, Any]) -> float | None:
    timings = answer.get("timings") or {}
    value = timings.get("engine_ms")
    return float(value) if value is not None else None


def _png(pixels: np.ndarray, level: int) -> tuple[bytes, int]:
    """PNG bytes and the bytes materialised on the way (Pillow's own copy of the pixels, then the PNG)."""
    image = Image.fromarray(pixels)  # Pillow copies the array into its own storage
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=level)
    data = buffer.getvalue()
    return data, pixels.nbytes + len(data)


# -- one function per path -----------------------------------------------------------------------------


def legacy_json(ep: Endpoints, size: Size, pixels: np.ndarray) -> Outcome:
    started = time.perf_counter()
    png, copied = _png(pixels, ep.png_level)
    text = base64.b64encode(png).decode("ascii")
    body = json.dumps({"image_data": text, "recognition_level": "accurate", "languages": ["en-US"]}).encode()
    response = ep.post("/api/v1/vision/ocr", content=body, headers={"Content-Type": "application/json"})
    answer = _check(response)
    latency = time.perf_counter() - started
    return Outcome(latency, copied + len(text) + len(body), len(body), _engine_ms(answer), answer.get("checksum"))


def http_png(ep: Endpoints, size: Size, pixels: np.ndarray) -> Outcome:
    started = time.perf_counter()
    png, copied = _png(pixels, ep.png_level)
    response = ep.post("/api/v1/ocr", content=png, headers={"Content-Type": "image/png"})
    answer = _check(response)
    latency = time.perf_counter() - started
    return Outcome(latency, copied, len(png), _engine_ms(answer), answer.get("checksum"))


def http_raw(ep: Endpoints, size: Size, pixels: np.ndarray) -> Outcome:
    params = {"height": size.height, "width": size.width, "channels": 3, "pixel_format": "rgb"}
    started = time.perf_counter()
    body = pixels.tobytes()  # httpx sends bytes; h11 would copy a memoryview anyway
    response = ep.post("/api/v1/ocr", params=params, content=body, headers={"Content-Type": "application/octet-stream"})
    answer = _check(response)
    latency = time.perf_counter() - started
    return Outcome(latency, len(body), len(body), _engine_ms(answer), answer.get("checksum"))


def shm_region(ep: Endpoints, size: Size, pixels: np.ndarray) -> Outcome:
    name, view = ep.region()
    request = {"region": name, "offset": 0, "height": size.height, "width": size.width, "channels": 3}
    started = time.perf_counter()
    np.copyto(view[: size.nbytes].reshape(size.height, size.width, 3), pixels)
    response = ep.post("/api/v1/shmem/ocr", json=request)
    answer = _check(response)
    latency = time.perf_counter() - started
    return Outcome(latency, size.nbytes, 0, _engine_ms(answer), answer.get("checksum"))


def shm_copy(ep: Endpoints, size: Size, pixels: np.ndarray) -> Outcome:
    session = ep.session
    started = time.perf_counter()
    result = session.ocr_copy(pixels)
    latency = time.perf_counter() - started
    return Outcome(latency, size.nbytes, 0, result.timings.engine_ms, result.checksum)


def shm_frame(ep: Endpoints, size: Size, pixels: np.ndarray) -> Outcome:
    session, lease = ep.session, ep.frame_lease(size, pixels)
    started = time.perf_counter()
    result = session.submit(lease)
    latency = time.perf_counter() - started
    return Outcome(latency, 0, 0, result.timings.engine_ms, result.checksum)


def iceoryx2(ep: Endpoints, size: Size, pixels: np.ndarray) -> Outcome:
    client = ep.iceoryx
    started = time.perf_counter()
    checksum = client.round_trip(size.height, size.width)
    latency = time.perf_counter() - started
    return Outcome(latency, 0, 0, None, checksum)


def iceoryx2_rendered(ep: Endpoints, size: Size, pixels: np.ndarray) -> Outcome:
    """The warm-up variant: pixels rendered into the loan, so the checksum proves what the helper read."""
    started = time.perf_counter()
    checksum = ep.iceoryx.round_trip(size.height, size.width, pixels)
    return Outcome(time.perf_counter() - started, 0, 0, None, checksum)


PATH_FUNCTIONS: dict[str, Callable[[Endpoints, Size, np.ndarray], Outcome]] = {
    "legacy-json": legacy_json,
    "http-png": http_png,
    "http-raw": http_raw,
    "shm-region": shm_region,
    "shm-copy": shm_copy,
    "shm-frame": shm_frame,
    "iceoryx2": iceoryx2,
}
VERIFY_FUNCTIONS = {**PATH_FUNCTIONS, "iceoryx2": iceoryx2_rendered}
