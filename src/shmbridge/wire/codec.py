"""Events to bytes and bytes to events, sans I/O: the encoder, the frame splitter and the decoder.

Owns the bodies of protocol version 1 (UTF-8 JSON by orjson, except OCR_REQUEST's fixed struct with
optional JSON options) and the hot paths that run once per frame: an OCR_REQUEST without options packs
and unpacks with one precompiled ``struct.Struct`` call, and a RESULT is framed around JSON the service
serialised once. It must never touch a socket, check who may send what (``connection`` does), or copy a
body more than the one ``bytes`` a frame needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from ..errors import ErrorCode, ProtocolError
from .events import (
    EVENT_OF,
    NO_OPTIONS,
    TYPE_OF,
    Alloc,
    Bye,
    Error,
    Event,
    Hello,
    OcrRequest,
    Result,
    SegmentGranted,
    Welcome,
)
from .frames import (
    DEFAULT_MAX_BODY,
    FLAG_HAS_FD,
    FRAME_TYPES,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    OCR_FRAME,
    OCR_STRUCT,
    PIXEL_FORMAT_CODES,
    PIXEL_FORMATS,
    SUPPORTED_VERSIONS,
    VERSION,
    DType,
    FrameType,
)

__all__ = [
    "FrameDecoder", "RawFrame", "decode_as", "decode_event", "encode", "encode_ocr_request", "encode_result_json",
]  # fmt: skip

_OCR_TYPE = int(FrameType.OCR_REQUEST)
_RESULT_TYPE = int(FrameType.RESULT)
_OCR_SIZE = OCR_STRUCT.size

# -- encoding ----------------------------------------------------------------------------------


def encode(event: Event) -> bytes:
    """The bytes of one frame for ``event``."""
    kind = type(event)
    if kind is OcrRequest:
        return encode_ocr_request(event)  # type: ignore[arg-type]
    body = orjson.dumps(_json_body(event))
    flags = FLAG_HAS_FD if kind is SegmentGranted else 0
    return HEADER.pack(MAGIC, VERSION, TYPE_OF[kind], flags, event.request_id, len(body)) + body


def encode_ocr_request(event: OcrRequest) -> bytes:
    """The bytes of an OCR_REQUEST: without options, header and struct in one ``pack``."""
    if not event.options:
        return OCR_FRAME.pack(MAGIC, VERSION, _OCR_TYPE, 0, event.request_id, _OCR_SIZE, *_ocr_fields(event))
    body = OCR_STRUCT.pack(*_ocr_fields(event)) + orjson.dumps(event.options)
    return HEADER.pack(MAGIC, VERSION, _OCR_TYPE, 0, event.request_id, len(body)) + body


def encode_result_json(request_id: int, body: bytes) -> bytes:
    """A RESULT frame around JSON the caller already serialised (``OcrResult.model_dump_json``): one
    serialisation on the hot path instead of model → dict → JSON."""
    return HEADER.pack(MAGIC, VERSION, _RESULT_TYPE, 0, request_id, len(body)) + body


def _ocr_fields(event: OcrRequest) -> tuple[int, ...]:
    """The OCR_STRUCT fields of ``event``, in wire order."""
    rx, ry, rw, rh = event.roi or (0, 0, 0, 0)
    return (event.segment, event.slot, event.offset, event.height, event.width, event.channels, event.dtype,
            PIXEL_FORMAT_CODES[event.pixel_format], 0, event.pitch, rx, ry, rw, rh)  # fmt: skip


def _json_body(event: Event) -> Mapping[str, Any]:
    if isinstance(event, Result):
        return event.result
    if isinstance(event, Error):
        body: dict[str, Any] = {"code": event.code, "message": event.message}
        with contextlib.suppress(ValueError):
            body["name"] = ErrorCode(event.code).name
        if event.retry_after is not None:
            body["retry_after"] = event.retry_after
        return body
    if isinstance(event, SegmentGranted):
        return {"segment": event.segment, "slot_size": event.slot_size, "slot_count": event.slot_count}
    if isinstance(event, Alloc):
        return {"frame_bytes": event.frame_bytes, "slots": event.slots}
    if isinstance(event, Hello):
        return {"versions": list(event.versions), "client": event.client, "pid": event.pid}
    if isinstance(event, Welcome):
        return {"version": event.version, "session_id": event.session_id, "limits": event.limits,
                "engine": event.engine}  # fmt: skip
    if isinstance(event, Bye):
        return {"reason": event.reason}
    raise TypeError(f"not an event: {event!r}")  # pragma: no cover


# -- splitting a stream into frames --------------------------------------------------------------


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

    @property
    def at_eof(self) -> bool:
        """The peer closed its side and every whole frame has been taken."""
        return self._eof and not self._buffer

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
        if len(buffer) < OCR_FRAME.size:
            return None
        fields = OCR_FRAME.unpack_from(buffer)
        magic, version, frame_type, _flags, rid, length = fields[:6]
        if magic != MAGIC or version != VERSION or frame_type != _OCR_TYPE or length != _OCR_SIZE:
            return None
        event = _ocr_request(rid, fields[6:], NO_OPTIONS)
        if event is not None:
            del buffer[: OCR_FRAME.size]
        return event


# -- decoding ----------------------------------------------------------------------------------


def decode_event(frame: RawFrame) -> Event:
    """Turn a raw frame into its event; ``ProtocolError`` if the body does not fit the type."""
    kind = EVENT_OF.get(frame.frame_type)
    if kind is None:
        raise ProtocolError(f"unknown frame type {frame.frame_type}", code=ErrorCode.UNKNOWN_FRAME_TYPE)
    return decode_as(frame, kind)


def decode_as(frame: RawFrame, kind: type) -> Event:
    """The event of class ``kind`` (``EVENT_OF[frame.frame_type]``) in ``frame``. RESULT, which a client
    decodes once per request, is tried first."""
    rid = frame.request_id
    if kind is OcrRequest:
        return _decode_ocr(rid, frame.body)
    body = _json(frame.body)
    try:
        if kind is Result:
            return Result(rid, body)
        if kind is Hello:
            versions = tuple(int(v) for v in body["versions"])
            return Hello(rid, versions, str(body.get("client", "")), int(body.get("pid", 0)))
        if kind is Welcome:
            return Welcome(rid, int(body["version"]), str(body["session_id"]), dict(body.get("limits", {})),
                           dict(body.get("engine", {})))  # fmt: skip
        if kind is Alloc:
            return Alloc(rid, _int(body["frame_bytes"]), _int(body.get("slots", 1)))
        if kind is SegmentGranted:
            if not frame.flags & FLAG_HAS_FD:
                raise ProtocolError("SEGMENT frame without a file descriptor", code=ErrorCode.MALFORMED)
            return SegmentGranted(rid, _int(body["segment"]), _int(body["slot_size"]), _int(body["slot_count"]))
        if kind is Error:
            retry = body.get("retry_after")
            return Error(rid, int(body["code"]), str(body.get("message", "")),
                         float(retry) if retry is not None else None)  # fmt: skip
        return Bye(rid, str(body.get("reason", "")))
    except (KeyError, TypeError, ValueError) as exc:
        name = FRAME_TYPES[frame.frame_type].name
        raise ProtocolError(f"malformed {name} body: {exc!r}", code=ErrorCode.MALFORMED) from None


def _decode_ocr(rid: int, body: bytes) -> OcrRequest:
    if len(body) < _OCR_SIZE:
        raise ProtocolError(f"OCR_REQUEST body is {len(body)} bytes; at least {_OCR_SIZE} expected",
                            code=ErrorCode.TRUNCATED)  # fmt: skip
    fields = OCR_STRUCT.unpack_from(body)
    options = _json(body[_OCR_SIZE:]) if len(body) > _OCR_SIZE else NO_OPTIONS
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
