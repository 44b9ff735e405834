"""A client's handle on one screen stream: ``with client.stream("screen") as s: s.ocr(frame)``.

It owns the handle's rules, written once for ``Client`` and ``AsyncClient``: every frame names the
stream; the first frame after the handle opens is a keyframe (a handle starts afresh, even where the
service still holds an older stream of that name); the handle's options go with every frame unless a
call gives its own. Closing the handle frees the stream on the service at once where HTTP carried it
(``DELETE /api/v1/streams/NAME``); a session's streams are freed when the session ends.

What it must never do: keep a frame or a result, or choose a transport (the client does that per call).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..streams.registry import check_name

if TYPE_CHECKING:
    from .async_client import AsyncClient
    from .base import ClientResult
    from .sync_client import Client


class _StreamRules:
    """The fields each frame of the stream is sent with."""

    def __init__(self, name: str, delta: bool, options: dict[str, Any]) -> None:
        self.name = check_name(name)
        self.delta = delta
        self.frames = 0
        self.closed = False
        self._options = options

    def fields(self, keyframe: bool, delta: bool | None, given: dict[str, Any]) -> dict[str, Any]:
        if self.closed:
            raise RuntimeError(f"stream {self.name!r} is closed: open a new one with client.stream({self.name!r})")
        fields = {**self._options, **given}
        fields.update(
            stream=self.name, keyframe=keyframe or self.frames == 0, delta=self.delta if delta is None else delta
        )
        self.frames += 1
        return fields


class ClientStream(_StreamRules):
    """A stream of frames through a ``Client``; see ``Client.stream``."""

    def __init__(self, client: Client, name: str, delta: bool, options: dict[str, Any]) -> None:
        super().__init__(name, delta, options)
        self._client = client

    def ocr(
        self, image: Any, *, keyframe: bool = False, delta: bool | None = None, **option_fields: Any
    ) -> ClientResult:
        """OCR ``image`` as the stream's next frame: only what changed since the previous one is read again.
        ``result.stream`` says what the service did; ``lines`` and ``text`` describe the whole frame."""
        return self._client.ocr(image, **self.fields(keyframe, delta, option_fields))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._client.close_stream(self.name)

    def __enter__(self) -> ClientStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClientStream(_StreamRules):
    """A stream of frames through an ``AsyncClient``; see ``AsyncClient.stream``."""

    def __init__(self, client: AsyncClient, name: str, delta: bool, options: dict[str, Any]) -> None:
        super().__init__(name, delta, options)
        self._client = client

    async def ocr(
        self, image: Any, *, keyframe: bool = False, delta: bool | None = None, **option_fields: Any
    ) -> ClientResult:
        """OCR ``image`` as the stream's next frame (see ``ClientStream.ocr``)."""
        return await self._client.ocr(image, **self.fields(keyframe, delta, option_fields))

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._client.close_stream(self.name)

    async def __aenter__(self) -> AsyncClientStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
