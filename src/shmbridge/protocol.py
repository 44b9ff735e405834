"""The session wire protocol, sans I/O: bytes in, immutable events out; events in, bytes out.

Nothing here touches a socket, so the session server, both clients and the fuzz tests share it and it is
tested without one. ``docs/protocol.md`` is the normative description; this module implements it.

Every frame is a 20-byte little-endian header followed by ``length`` body bytes::

    0      4        5         6      8            16         20
    ├magic─┼version─┼type─────┼flags─┼request_id──┼length────┼ body ...
    "SHMB"   u8 = 1   u8        u16    u64          u32

The one hot-path body, OCR_REQUEST, is a fixed struct naming the pixels (never the pixels themselves)
followed by optional UTF-8 JSON options. Every other body is UTF-8 JSON (orjson).

Events are frozen dataclasses, except the two that cross on every request (OCR_REQUEST and RESULT) and
the raw frame: those are ``NamedTuple`` s, which are as immutable and build as one tuple, where a frozen
dataclass's ``__init__`` runs ``object.__setattr__`` once per field (decoding an OCR_REQUEST took a third
of the time after the change, with a dict lookup instead of a ``FrameType(...)`` call; docs/benchmarks.md,
"Figures behind the code's choices").
"""

from __future__ import annotations

import contextlib
import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from .errors import ErrorCode, ProtocolError
from .models import PixelFormat

MAGIC = b"SHMB"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
HEADER = struct.Struct("<4sBBHQI")
HEADER_SIZE = HEADER.size  # 20
DEFAULT_MAX_BODY = 1 << 20

#: OCR_REQUEST fixed part: segment, slot, offset, height, width, channels, dtype, pixel format,
#: reserved, row pitch, roi x, y, width, height (roi width 0 = whole image).
OCR_STRUCT = struct.Struct("<IIQIIBBBBQIIII")
#: A whole OCR_REQUEST frame without options, header and struct in one (the hot path packs and unpacks once).
_OCR_FRAME = struct.Struct(HEADER.format + OCR_STRUCT.format.lstrip("<"))

FLAG_HAS_FD = 0x0001  # exactly one file descriptor travels with this frame (SCM_RIGHTS)


class FrameType(enum.IntEnum):
    HELLO = 1
    WELCOME = 2
    ALLOC = 3
    SEGMENT = 4
    OCR_REQUEST = 5
    RESULT = 6
    ERROR = 7
    BYE = 8


class DType(enum.IntEnum):
    UINT8 = 1


#: Pixel format codes on the wire. Members are ``str`` s too ("gray", "rgb", ...), so either spelling looks up.
PIXEL_FORMATS: dict[int, PixelFormat] = {0: PixelFormat.GRAY, 1: PixelFormat.RGB, 2: PixelFormat.BGR,
                                         3: PixelFormat.RGBA, 4: PixelFormat.BGRA}  # fmt: skip
PIXEL_FORMAT_CODES: dict[str, int] = {name: code for code, name in PIXEL_FORMATS.items()}
_FRAME_TYPES: dict[int, FrameType] = {int(t): t for t in FrameType}  # a dict lookup, not an enum call
_OCR_TYPE = int(FrameType.OCR_REQUEST)
_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → server, first frame: the versions the client speaks."""

    request_id: int = 0
    versions: tuple[int, ...] = SUPPORTED_VERSIONS
    client: str = "shmbridge"
    pid: int = 0


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server → client: the chosen version, the session's limits and the engine."""

    request_id: int
    version: int
    session_id: str
    limits: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alloc:
    """Client → server: please create a segment of ``slots`` slots for frames of ``frame_bytes``."""

    request_id: int
    frame_bytes: int
    slots: int = 1


@dataclass(frozen=True, slots=True)
class SegmentGranted:
    """Server → client, with one fd attached: the segment to map read-write."""

    request_id: int
    segment: int
    slot_size: int
    slot_count: int


class OcrRequest(NamedTuple):
    """Client → server: OCR the pixels at ``offset`` in ``slot`` of ``segment``.

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
    options: Mapping[str, Any] = _NO_OPTIONS  # read-only: one shared empty default is safe
    dtype: int = DType.UINT8


class Result(NamedTuple):
    """Server → client: the OCR result as the JSON form of ``models.OcrResult``."""

    request_id: int
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Error:
    """Either direction: a stable error code and a message. ``request_id`` 0 concerns the connection."""

    request_id: int
    code: int
    message: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Bye:
    """Either direction: I am closing; no more frames follow."""

    request_id: int = 0
    reason: str = ""


Event = Hello | Welcome | Alloc | SegmentGranted | OcrRequest | Result | Error | Bye

_TYPE_OF: dict[type, FrameType] = {
    Hello: FrameType.HELLO,
    Welcome: FrameType.WELCOME,
    Alloc: FrameType.ALLOC,
    SegmentGranted: FrameType.SEGMENT,
    OcrRequest: FrameType.OCR_REQUEST,
    Result: FrameType.RESULT,
    Error: FrameType.ERROR,
    Bye: FrameType.BYE,
}
_EVENT_OF: dict[FrameType, type] = {frame_type: event for event, frame_type in _TYPE_OF.items()}


# -- encoding ----------------------------------------------------------------------------------


def encode(event: Event) -> bytes:
    """The bytes of one frame for ``event``."""
    frame_type = _TYPE_OF[type(event)]
    flags = 0
    if isinstance(event, OcrRequest):
        if not event.options:
            return _OCR_FRAME.pack(MAGIC, VERSION, frame_type, 0, event.request_id, OCR_STRUCT.size,
                                   *_ocr_fields(event))  # fmt: skip
        body = _encode_ocr(event)
    else:
        body = orjson.dumps(_json_body(event))
        if isinstance(event, SegmentGranted):
            flags |= FLAG_HAS_FD
    return HEADER.pack(MAGIC, VERSION, frame_type, flags, event.request_id, len(body)) + body


def encode_result_json(request_id: int, body: bytes) -> bytes:
    """A RESULT frame around JSON the caller already serialised (``OcrResult.model_dump_json``): one
    serialisation on the hot path instead of model → dict → JSON."""
    return HEADER.pack(MAGIC, VERSION, FrameType.RESULT, 0, request_id, len(body)) + body


def _ocr_fields(event: OcrRequest) -> tuple[int, ...]:
    """The OCR_STRUCT fields of ``event``, in wire order."""
    rx, ry, rw, rh = event.roi or (0, 0, 0, 0)
    return (event.segment, event.slot, event.offset, event.height, event.width, event.channels, event.dtype,
            PIXEL_FORMAT_CODES[event.pixel_format], 0, event.pitch, rx, ry, rw, rh)  # fmt: skip


def _encode_ocr(event: OcrRequest) -> bytes:
    fixed = OCR_STRUCT.pack(*_ocr_fields(event))
    return fixed + orjson.dumps(event.options) if event.options else fixed


def _json_body(event: Event) -> dict[str, Any]:
    if isinstance(event, Hello):
        return {"versions": list(event.versions), "client": event.client, "pid": event.pid}
    if isinstance(event, Welcome):
        return {"version": event.version, "session_id": event.session_id, "limits": event.limits,
                "engine": event.engine}  # fmt: skip
    if isinstance(event, Alloc):
        return {"frame_bytes": event.frame_bytes, "slots": event.slots}
    if isinstance(event, SegmentGranted):
        return {"segment": event.segment, "slot_size": event.slot_size, "slot_count": event.slot_count}
    if isinstance(event, Result):
        return event.result
    if isinstance(event, Error):
        body: dict[str, Any] = {"code": event.code, "message": event.message}
        with contextlib.suppress(ValueError):
            body["name"] = ErrorCode(event.code).name
        if event.retry_after is not None:
            body["retry_after"] = event.retry_after
        return body
    if isinstance(event, Bye):
        return {"reason": event.reason}
    raise TypeError(f"not an event: {event!r}")  # pragma: no cover


# -- decoding ----------------------------------------------------------------------------------


class RawFrame(NamedTuple):
    frame_type: int
    flags: int
    request_id: int
    body: bytes


class FrameDecoder:
    """Splits a byte stream into frames. Feed it with ``receive_data``; pull with ``next_frame``.

    It raises ``ProtocolError`` with a stable code as soon as a header is wrong, before reading a body,
    so a peer announcing a 4 GiB body costs nothing.
    """

    def __init__(self, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.max_body = max_body
        self._buffer = bytearray()
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        """Append bytes; ``b""`` means the peer closed its side."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def next_frame(self) -> RawFrame | None:
        """The next whole frame, or ``None`` if more bytes are needed."""
        buffer = self._buffer
        if len(buffer) < HEADER_SIZE:
            if self._eof and buffer:
                raise ProtocolError(f"connection closed inside a frame header ({len(buffer)} bytes)",
                                    code=ErrorCode.TRUNCATED)  # fmt: skip
            return None
        magic, version, frame_type, flags, request_id, length = HEADER.unpack_from(buffer)
        if magic != MAGIC:
            raise ProtocolError(f"bad magic {bytes(magic)!r}; expected {MAGIC!r}", code=ErrorCode.BAD_MAGIC)
        if version not in SUPPORTED_VERSIONS:
            raise ProtocolError(f"protocol version {version} is not supported (supported: "
                                f"{list(SUPPORTED_VERSIONS)})", code=ErrorCode.BAD_VERSION)  # fmt: skip
        if length > self.max_body:
            raise ProtocolError(f"frame body of {length} bytes exceeds the limit of {self.max_body}",
                                code=ErrorCode.FRAME_TOO_LARGE)  # fmt: skip
        end = HEADER_SIZE + length
        if len(buffer) < end:
            if self._eof:
                raise ProtocolError(f"connection closed inside a {length}-byte frame body",
                                    code=ErrorCode.TRUNCATED)  # fmt: skip
            return None
        body = bytes(buffer[HEADER_SIZE:end])
        del buffer[:end]
        return RawFrame(frame_type, flags, request_id, body)

    def next_plain_ocr_request(self) -> OcrRequest | None:
        """The hot path of a session: if the next frame is a whole, valid OCR_REQUEST without options,
        take it with one ``unpack`` (a third of the time of ``next_frame`` + ``decode_event``; docs/benchmarks.md).
        Anything else, every error included, returns ``None`` and leaves the bytes to ``next_frame``."""
        buffer = self._buffer
        if len(buffer) < _OCR_FRAME.size:
            return None
        fields = _OCR_FRAME.unpack_from(buffer)
        magic, version, frame_type, _flags, rid, length = fields[:6]
        if magic != MAGIC or version != VERSION or frame_type != _OCR_TYPE or length != OCR_STRUCT.size:
            return None
        event = _ocr_request(rid, fields[6:], _NO_OPTIONS)
        if event is not None:
            del buffer[: _OCR_FRAME.size]
        return event


def decode_event(frame: RawFrame) -> Event:
    """Turn a raw frame into its event; ``ProtocolError`` if the body does not fit the type."""
    frame_type = _FRAME_TYPES.get(frame.frame_type)
    if frame_type is None:
        raise ProtocolError(f"unknown frame type {frame.frame_type}", code=ErrorCode.UNKNOWN_FRAME_TYPE)
    rid = frame.request_id
    if frame_type is FrameType.OCR_REQUEST:
        return _decode_ocr(rid, frame.body)
    body = _json(frame.body)
    try:
        if frame_type is FrameType.HELLO:
            versions = tuple(int(v) for v in body["versions"])
            return Hello(rid, versions, str(body.get("client", "")), int(body.get("pid", 0)))
        if frame_type is FrameType.WELCOME:
            return Welcome(rid, int(body["version"]), str(body["session_id"]), dict(body.get("limits", {})),
                           dict(body.get("engine", {})))  # fmt: skip
        if frame_type is FrameType.ALLOC:
            return Alloc(rid, _int(body["frame_bytes"]), _int(body.get("slots", 1)))
        if frame_type is FrameType.SEGMENT:
            if not frame.flags & FLAG_HAS_FD:
                raise ProtocolError("SEGMENT frame without a file descriptor", code=ErrorCode.MALFORMED)
            return SegmentGranted(rid, _int(body["segment"]), _int(body["slot_size"]), _int(body["slot_count"]))
        if frame_type is FrameType.RESULT:
            return Result(rid, body)
        if frame_type is FrameType.ERROR:
            retry = body.get("retry_after")
            return Error(rid, int(body["code"]), str(body.get("message", "")),
                         float(retry) if retry is not None else None)  # fmt: skip
        return Bye(rid, str(body.get("reason", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed {frame_type.name} body: {exc!r}", code=ErrorCode.MALFORMED) from None


def _json(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"body is not JSON: {exc}", code=ErrorCode.MALFORMED) from None
    if not isinstance(value, dict):
        raise ProtocolError("body must be a JSON object", code=ErrorCode.MALFORMED)
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


def _decode_ocr(rid: int, body: bytes) -> OcrRequest:
    if len(body) < OCR_STRUCT.size:
        raise ProtocolError(f"OCR_REQUEST body is {len(body)} bytes; at least {OCR_STRUCT.size} expected",
                            code=ErrorCode.TRUNCATED)  # fmt: skip
    fields = OCR_STRUCT.unpack_from(body)
    options = _json(body[OCR_STRUCT.size :]) if len(body) > OCR_STRUCT.size else _NO_OPTIONS
    event = _ocr_request(rid, fields, options)
    if event is None:
        dtype, fmt_code = fields[6], fields[7]
        if dtype != DType.UINT8:
            raise ProtocolError(f"dtype code {dtype} is not supported (1 = uint8)", code=ErrorCode.SHAPE_MISMATCH)
        raise ProtocolError(f"pixel format code {fmt_code} is unknown", code=ErrorCode.SHAPE_MISMATCH)
    return event


def _ocr_request(rid: int, fields: tuple[int, ...], options: Mapping[str, Any]) -> OcrRequest | None:
    """The event for unpacked OCR_STRUCT ``fields``; ``None`` if its dtype or pixel format is unknown."""
    segment, slot, offset, height, width, channels, dtype, fmt_code, _reserved, pitch, rx, ry, rw, rh = fields
    pixel_format = PIXEL_FORMATS.get(fmt_code)
    if dtype != DType.UINT8 or pixel_format is None:
        return None
    roi = (rx, ry, rw, rh) if rw else None
    return OcrRequest(rid, segment, slot, offset, height, width, channels, pixel_format, pitch, roi, options, dtype)


# -- the state table ----------------------------------------------------------------------------


class State(enum.Enum):
    AWAIT_HELLO = "await_hello"
    READY = "ready"
    CLOSED = "closed"


# What the client may send in each state. The server answers HELLO with WELCOME (or ERROR + close);
# after that any number of ALLOC and OCR_REQUEST frames may be in flight, each answered by exactly one
# SEGMENT/RESULT or ERROR with the same request id, in any order. BYE from either side ends the session.
CLIENT_MAY_SEND: dict[State, frozenset[type]] = {
    State.AWAIT_HELLO: frozenset({Hello, Bye}),
    State.READY: frozenset({Alloc, OcrRequest, Bye}),
    State.CLOSED: frozenset(),
}


class ServerConnection:
    """The server's view of one session: decodes client frames and enforces the state table."""

    def __init__(self, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.decoder = FrameDecoder(max_body)
        self.state = State.AWAIT_HELLO

    def receive_data(self, data: bytes) -> None:
        self.decoder.receive_data(data)

    def next_event(self) -> Event | None:
        """The next client event, ``None`` if more bytes are needed; ``ProtocolError`` on any violation."""
        if self.state is State.READY and (event := self.decoder.next_plain_ocr_request()) is not None:
            return event
        frame = self.decoder.next_frame()
        if frame is None:
            return None
        allowed = CLIENT_MAY_SEND[self.state]
        # One rule for a frame the client may not send here: the type decides, before its body is read, so
        # a malformed WELCOME ends the session exactly like a valid one. Unknown types stay per-request errors.
        known = _FRAME_TYPES.get(frame.frame_type)
        if known is not None and _EVENT_OF[known] not in allowed:
            raise self._unexpected(_EVENT_OF[known].__name__)
        try:
            event = decode_event(frame)
        except ProtocolError as exc:
            if self.state is State.READY:
                exc.request_id = frame.request_id  # the frame was read whole: the session survives
            raise
        if type(event) not in allowed:
            raise self._unexpected(type(event).__name__)
        if isinstance(event, Bye):
            self.state = State.CLOSED
        return event

    def _unexpected(self, name: str) -> ProtocolError:
        return ProtocolError(
            f"{name} is not allowed in state {self.state.value}"
            + (" (send HELLO first)" if self.state is State.AWAIT_HELLO else ""),
            code=ErrorCode.UNEXPECTED_FRAME,
        )

    def welcomed(self) -> None:
        """Call after sending WELCOME: requests may flow from now on."""
        self.state = State.READY


def negotiate(client_versions: tuple[int, ...]) -> int:
    """The highest version both sides speak; ``ProtocolError(BAD_VERSION)`` if none."""
    common = set(client_versions) & set(SUPPORTED_VERSIONS)
    if not common:
        raise ProtocolError(f"no common protocol version: client speaks {list(client_versions)}, "
                            f"service speaks {list(SUPPORTED_VERSIONS)}", code=ErrorCode.BAD_VERSION)  # fmt: skip
    return max(common)
