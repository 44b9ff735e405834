"""The old service's Python client, kept as a thin facade over ``AsyncClient`` so old code runs unchanged.

::

    async with shared_memory_client("http://localhost:8080") as client:
        result = await client.process_ocr(image_data=image)
        print(result.text, result.communication_mode, result.processing_time_ms)

``image_data`` may be PNG/JPEG bytes, a base64 string (as the old client sent), a numpy array, a PIL image or
a path. Unlike the old client nothing is base64-encoded on the way: pixels go through shared memory, or as
raw bytes over HTTP. New code should use ``shmbridge.AsyncClient`` directly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from .client.async_client import AsyncClient
from .client.base import ClientResult, TransportPolicy
from .errors import InvalidRequest


class LegacyResult(ClientResult):
    """A ``ClientResult`` that also answers the old result's field names."""

    @property
    def bounding_boxes(self) -> list[dict[str, Any]]:
        """The old ``bounding_boxes``, in pixels with a top-left origin (the old service used Vision's
        normalised bottom-left values)."""
        return [
            {
                "text": line.text,
                "x": line.box.x,
                "y": line.box.y,
                "width": line.box.width,
                "height": line.box.height,
                "confidence": line.confidence,
            }
            for line in self.lines
        ]

    @property
    def ane_used(self) -> bool:
        return self.engine == "vision"

    @property
    def error(self) -> str | None:
        return None

    @property
    def cache_hit(self) -> bool:
        return False


class SharedMemoryClient:
    """The old client's methods over one ``AsyncClient`` (plus an HTTP-only one for ``force_http``)."""

    def __init__(self, base_url: str = "http://localhost:8080", **client_options: Any) -> None:
        self.base_url = base_url
        self._options = client_options
        self._client = AsyncClient(base_url, **client_options)
        self._http_only: AsyncClient | None = None

    async def __aenter__(self) -> SharedMemoryClient:
        await self._client.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cleanup()

    async def process_ocr(
        self,
        image_data: Any,
        *,
        recognition_level: str = "accurate",
        languages: Sequence[str] | None = None,
        custom_words: Sequence[str] | None = None,
        minimum_text_height: float | None = None,
        request_id: str | None = None,
        force_http: bool = False,
        roi: Any = None,
    ) -> LegacyResult:
        """OCR one image, over shared memory when possible; ``force_http`` skips it."""
        client = self._client
        if force_http:
            if self._http_only is None:
                options = {key: value for key, value in self._options.items() if key not in {"mode", "socket"}}
                self._http_only = AsyncClient(self.base_url, mode=TransportPolicy.HTTP, **options)
            client = self._http_only
        result = await client.ocr(
            _image(image_data),
            request_id=request_id,
            recognition_level=recognition_level,
            languages=tuple(languages) if languages is not None else None,
            custom_words=tuple(custom_words) if custom_words is not None else None,
            minimum_text_height=minimum_text_height,
            roi=roi,
        )
        return LegacyResult.model_construct(**dict(result))

    async def get_service_info(self) -> dict[str, Any]:
        """The service's ``/api/v1/bridge/info``."""
        return await self._client.info()

    async def health(self) -> dict[str, Any]:
        return await self._client.health()

    async def cleanup(self) -> None:
        """Close the session and HTTP connections. Safe to call twice."""
        await self._client.close()
        if self._http_only is not None:
            await self._http_only.close()


@contextlib.asynccontextmanager
async def shared_memory_client(
    base_url: str = "http://localhost:8080", **client_options: Any
) -> AsyncIterator[SharedMemoryClient]:
    """``async with shared_memory_client(url) as client: await client.process_ocr(image_data=...)``."""
    client = SharedMemoryClient(base_url, **client_options)
    try:
        await client.__aenter__()
        yield client
    finally:
        await client.cleanup()


def _image(image_data: Any) -> Any:
    """A base64 string (the old wire format) becomes bytes; a string naming a file stays a path."""
    if isinstance(image_data, str) and (image_data.startswith("data:") or not _is_file(image_data)):
        return _b64decode(image_data)
    return image_data


def _is_file(text: str) -> bool:
    if len(text) > 4096 or "\n" in text:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _b64decode(text: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    compact = "".join(text.split()).replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("image_data is neither a file path nor valid base64") from None


__all__ = ["LegacyResult", "SharedMemoryClient", "shared_memory_client"]
