"""The events of protocol version 1: one immutable value per frame type, and errors to and from ERROR.

Owns what each frame means once decoded, field by field, and the mapping between an ``ERROR`` event and
the typed exception it stands for. It must never hold bytes or do I/O: ``codec`` turns these into frames.

Events are frozen slotted dataclasses, except the two that cross on every request (OCR_REQUEST and
RESULT): those are ``NamedTuple`` s, which are as immutable and build as one tuple, where a frozen
dataclass's ``__init__`` runs ``object.__setattr__`` once per field (decoding an OCR_REQUEST took a third
of the time after the change; docs/benchmarks.md, "Figures behind the code's choices").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from ..errors import ErrorCode, ProtocolError, ShmBridgeError, error_from_code
from .frames import SUPPORTED_VERSIONS, DType, FrameType

__all__ = [
    "EVENT_OF", "NO_OPTIONS", "TYPE_OF", "Alloc", "Bye", "Error", "Event", "Hello", "OcrRequest", "Result",
    "SegmentGranted", "Welcome", "error_of",
]  # fmt: skip

NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → service, first frame: the versions the client speaks."""

    request_id: int = 0
    versions: tuple[int, ...] = SUPPORTED_VERSIONS
    client: str = "shmbridge"
    pid: int = 0


@dataclass(frozen=True, slots=True)
class Welcome:
    """Service → client: the chosen version, the session's limits and the engine."""

    request_id: int
    version: int
    session_id: str
    limits: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alloc:
    """Client → service: please create a segment of ``slots`` slots for frames of ``frame_bytes``."""

    request_id: int
    frame_bytes: int
    slots: int = 1


@dataclass(frozen=True, slots=True)
class SegmentGranted:
    """Service → client, with one fd attached: the segment to map read-write."""

    request_id: int
    segment: int
    slot_size: int
    slot_count: int


class OcrRequest(NamedTuple):
    """Client → service: OCR the pixels at ``offset`` in ``slot`` of ``segment``.

    Decoded, ``pixel_format`` is a ``models.PixelFormat`` (a ``str``); a plain name works when encoding."""

    request_id: int
    segment: int
    slot: int
    offset: int
    height: int
    width: int
    channels: int
    pixel_format: str
    pitch: int
    roi: tuple[int, int, int, int] | None = None
    options: Mapping[str, Any] = NO_OPTIONS  # read-only: one shared empty default is safe
    dtype: int = DType.UINT8


class Result(NamedTuple):
    """Service → client: the OCR result as the JSON form of ``models.OcrResult``."""

    request_id: int
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Error:
    """Service → client: a stable error code and a message. ``request_id`` 0 concerns the connection,
    which the service closes after it."""

    request_id: int
    code: int
    message: str
    retry_after: float | None = None

    @classmethod
    def of(cls, request_id: int, exc: ShmBridgeError) -> Error:
        """The ERROR that tells the peer about ``exc`` (with its ``retry_after``, if it has one)."""
        return cls(request_id, exc.code, exc.message, getattr(exc, "retry_after", None))


@dataclass(frozen=True, slots=True)
class Bye:
    """Either direction: I am closing; no more frames follow."""

    request_id: int = 0
    reason: str = ""


Event = Hello | Welcome | Alloc | SegmentGranted | OcrRequest | Result | Error | Bye

TYPE_OF: dict[type, FrameType] = {
    Hello: FrameType.HELLO,
    Welcome: FrameType.WELCOME,
    Alloc: FrameType.ALLOC,
    SegmentGranted: FrameType.SEGMENT,
    OcrRequest: FrameType.OCR_REQUEST,
    Result: FrameType.RESULT,
    Error: FrameType.ERROR,
    Bye: FrameType.BYE,
}
EVENT_OF: dict[int, type] = {int(frame_type): event for event, frame_type in TYPE_OF.items()}


def error_of(event: Event) -> Exception:
    """The typed exception a reply stands for: its error, or ``UNEXPECTED_FRAME`` for a reply of the wrong kind."""
    if isinstance(event, Error):
        return error_from_code(event.code, event.message, retry_after=event.retry_after)
    return ProtocolError(f"unexpected {type(event).__name__} frame", code=ErrorCode.UNEXPECTED_FRAME)
