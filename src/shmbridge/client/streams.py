"""The rules of a client's handle on one screen stream: ``with client.stream("screen") as s: s.ocr(frame)``.

``StreamRules`` owns the handle's rules, written once for ``Client`` and ``AsyncClient``: every frame
names the stream; the first frame after the handle opens is a keyframe (a handle starts afresh, even where
the service still holds an older stream of that name); the handle's options go with every frame unless a
call gives its own; a closed handle takes no more frames. Closing the handle frees the stream on the
service at once where HTTP carried it (``DELETE /api/v1/streams/NAME``); a session's streams are freed
when the session ends. The handles themselves (``AsyncClientStream`` and its generated blocking twin
``ClientStream``) live with the calls they make, in ``shell_async.py`` and ``shell.py``.

What it must never do: keep a frame or a result, or choose a transport (the client does that per call).
"""

from __future__ import annotations

from typing import Any

from ..streams.registry import check_name


class StreamRules:
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
