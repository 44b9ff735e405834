"""The frames of protocol version 1 that ``data/protocol_v1.json`` pins, byte for byte.

Three kinds of case, each a name, the side that sends it, the event and its bytes:

- ``codec``: every frame type (and the variants of OCR_REQUEST, ERROR and BYE) built as events and
  encoded by the codec;
- ``client``: the frames the client's own code builds (HELLO with its name and pid, ALLOC with the
  WELCOME's ``slots_per_segment``, OCR_REQUEST from ``OcrOptions``: defaults, options, a region of interest,
  a stream, a strided crop);
- ``service``: the frames the service's own code builds (WELCOME with the limits of a given config,
  SEGMENT for a segment it created, RESULT serialised by pydantic from an ``OcrResult``, ERROR from typed
  exceptions).

``python -m tests.bridge.protocol_v1_cases`` writes the fixture; it was written from the code of main
before the wire package existed, and every later version of the code must rebuild the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shmbridge import protocol as p
from shmbridge import wire
from shmbridge.client.slots import SessionState
from shmbridge.errors import Busy, ErrorCode, InvalidRequest, ProtocolError, SessionLimitExceeded, ShmBridgeError
from shmbridge.models import Box, OcrOptions, OcrResult, PixelFormat, Roi, StreamInfo, TextLine, Timings

FIXTURE = Path(__file__).with_name("data") / "protocol_v1.json"
PID = 4242  # the pid a built HELLO carries (os.getpid is replaced while building)
#: The config whose limits the service's WELCOME carries (every limit set, so no default of the machine leaks in).
CONFIG = {
    "engine": "null",
    "max_frame_bytes": 64 * 2**20,
    "max_pixels": 40_000_000,
    "session_bytes": 256 * 2**20,
    "total_bytes": 1024 * 2**20,
    "slots_per_segment": 3,
    "max_control_frame": 2**20,
    "max_in_flight": 2,
    "request_timeout": 12.5,
    "max_segments_per_session": 16,
}
U32, U64 = 2**32 - 1, 2**64 - 1  # the largest values of the struct's fields
SLOT_SIZE = 64 * 1024  # the smallest size class: the client cases map 2 slots of it
EVENT_TYPES = {
    cls.__name__: cls for cls in (p.Hello, p.Welcome, p.Alloc, p.SegmentGranted, p.OcrRequest, p.Result, p.Error, p.Bye)
}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    sender: str  # "client" or "service"
    event: Any
    data: bytes
    fds: int = 0  # descriptors that travel with the frame (SCM_RIGHTS)


def fields_of(event: Any) -> dict[str, Any]:
    """An event's fields as JSON values (tuples become lists, enum members their values)."""
    if hasattr(event, "_asdict"):
        raw = event._asdict()
    else:
        raw = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return json.loads(json.dumps(raw, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {value!r}")  # pragma: no cover


def event_from(name: str, fields: dict[str, Any]) -> Any:
    """The event a fixture row describes, built from its JSON fields."""
    values = dict(fields)
    if name == "Hello":
        values["versions"] = tuple(values["versions"])
    if name == "OcrRequest" and values["roi"] is not None:
        values["roi"] = tuple(values["roi"])
    return EVENT_TYPES[name](**values)


# -- the cases ---------------------------------------------------------------------------------------------


def codec_cases() -> Iterator[Case]:
    events = [
        ("hello", "client", p.Hello(1, (1,), "shmbridge-python", 4242)),
        ("hello_defaults", "client", p.Hello()),
        ("hello_many_versions", "client", p.Hello(9, (1, 2, 7), "other-client", 1)),
        (
            "welcome",
            "service",
            p.Welcome(
                1,
                1,
                "0123456789ab",
                {"max_frame_bytes": 10, "request_timeout": 2.5},
                {"name": "null", "native_formats": ["gray", "rgb"]},
            ),
        ),
        ("welcome_empty", "service", p.Welcome(1, 1, "s")),
        ("alloc", "client", p.Alloc(2, 6220800, 4)),
        ("alloc_default_slots", "client", p.Alloc(3, 1000, 0)),
        ("segment", "service", p.SegmentGranted(2, 1, 6291456, 4)),
        ("ocr_plain", "client", p.OcrRequest(4, 1, 0, 0, 60, 300, 4, "rgba", 1200)),
        ("ocr_roi", "client", p.OcrRequest(5, 1, 1, 64, 1080, 1920, 3, "bgr", 5760, (10, 20, 30, 40))),
        (
            "ocr_options",
            "client",
            p.OcrRequest(
                6, 2, 3, 0, 32, 32, 1, "gray", 64, None, {"recognition_level": "fast", "languages": ["de-DE", "fr-FR"]}
            ),
        ),
        (
            "ocr_roi_options",
            "client",
            p.OcrRequest(
                7,
                1,
                2,
                128,
                480,
                640,
                3,
                "rgb",
                1920,
                (1, 2, 3, 4),
                {"custom_words": ["shmbridge"], "minimum_text_height": 0.1},
            ),
        ),
        (
            "ocr_stream",
            "client",
            p.OcrRequest(
                8, 1, 0, 0, 1080, 1920, 4, "bgra", 7680, None, {"stream": "screen", "keyframe": True, "delta": True}
            ),
        ),
        ("ocr_big_fields", "client", p.OcrRequest(U64, U32, U32, U64, U32, U32, 3, "rgb", U64, (U32, U32, 1, U32))),
        ("result", "service", p.Result(4, {"text": "hello", "lines": [], "confidence": 0.5, "engine": "null"})),
        ("result_empty", "service", p.Result(5, {})),
        ("error", "service", p.Error(5, int(ErrorCode.BAD_SLOT), "slot 9 does not exist")),
        ("error_connection", "service", p.Error(0, int(ErrorCode.UNEXPECTED_FRAME), "ALLOC is not allowed")),
        ("error_retry_after", "service", p.Error(6, int(ErrorCode.BUSY), "busy", retry_after=0.5)),
        ("error_unknown_code", "service", p.Error(7, 999, "a code this side does not know")),
        ("bye_client", "client", p.Bye(0, "client closed")),
        ("bye_service", "service", p.Bye(0, "the service is shutting down")),
        ("bye_empty", "client", p.Bye()),
    ]
    for name, sender, event in events:
        yield Case(f"codec/{name}", sender, event, p.encode(event), 1 if isinstance(event, p.SegmentGranted) else 0)


def client_cases() -> Iterator[Case]:
    """The frames the client's ``SessionState`` builds, with one granted segment of two 64 KiB slots."""
    state = SessionState()
    getpid, os.getpid = os.getpid, lambda: PID
    try:
        rid, data = state.hello()
    finally:
        os.getpid = getpid
    yield _built("client/hello", "client", data)
    state.feed(p.encode(p.Welcome(rid, 1, "0123456789ab", {"slots_per_segment": 4})), [])
    rid, data = state.alloc(40 * 40 * 3)
    yield _built("client/alloc", "client", data)
    fd = os.memfd_create("protocol-v1-case", os.MFD_CLOEXEC)
    os.ftruncate(fd, 2 * SLOT_SIZE)
    state.feed(p.encode(p.SegmentGranted(rid, 1, SLOT_SIZE, 2)), [fd])
    try:
        lease = state.try_lease(40 * 40 * 3)
        assert lease is not None
        frame = lease.frame(40, 40, 3)
        requests = [
            ("ocr_no_options", frame, PixelFormat.RGB, None),
            ("ocr_default_options", frame, PixelFormat.BGR, OcrOptions()),
            (
                "ocr_options",
                frame,
                PixelFormat.RGB,
                OcrOptions(
                    recognition_level="fast", languages=("de-DE",), custom_words=("a",), minimum_text_height=0.25
                ),
            ),
            ("ocr_roi", frame, PixelFormat.RGB, OcrOptions(roi=Roi(x=1, y=2, width=30, height=20))),
            (
                "ocr_roi_options",
                frame,
                PixelFormat.BGR,
                OcrOptions(roi=Roi(x=0, y=0, width=5, height=6), languages=["ja"]),
            ),
            ("ocr_stream", frame, PixelFormat.RGB, OcrOptions(stream="screen", keyframe=True, delta=True)),
            ("ocr_stream_roi", frame, PixelFormat.RGB, OcrOptions(stream="s.1", roi=Roi(x=3, y=4, width=5, height=6))),
            ("ocr_crop", frame[5:25, 10:30], PixelFormat.RGB, None),
            ("ocr_gray", lease.buffer[: 40 * 40].reshape(40, 40), PixelFormat.GRAY, None),
            ("ocr_rgba", lease.buffer[: 20 * 30 * 4].reshape(20, 30, 4), PixelFormat.BGRA, None),
        ]
        for name, image, fmt, options in requests:
            rid, data = state.ocr_request(lease, image, fmt, options)
            state.result_of(p.Result(rid, {}), lease)  # its reply: the slot is the caller's again
            yield _built(f"client/{name}", "client", data)
        del frame, image, lease
    finally:
        state.close()
    yield _built("client/bye", "client", p.encode(p.Bye(0, "client closed")))


def service_cases() -> Iterator[Case]:
    """The frames as the service builds them, through its ``wire.Connection``: WELCOME's limits from
    ``CONFIG``, RESULT serialised by pydantic from a model, ERRORs from typed exceptions."""
    from shmbridge.config import ServiceConfig

    config = ServiceConfig(**CONFIG)
    conn = _service_connection(p.Hello(1))
    welcome = p.Welcome(
        1,
        p.negotiate((1,)),
        "0123456789ab",
        limits=wire.welcome_limits(config),
        engine={"name": "null", "native_formats": ["gray", "rgb", "bgr", "rgba", "bgra"]},
    )
    yield _built("service/welcome", "service", conn.send(welcome))
    yield _built("service/segment", "service", conn.send(p.SegmentGranted(2, 1, 6291456, 3)), fds=1)
    line = TextLine(
        text="Save changes?",
        confidence=0.98,
        box=Box(x=812.0, y=440.0, width=190.0, height=22.0),
        quad=((812.0, 440.0), (1002.0, 440.0), (1002.0, 462.0), (812.0, 462.0)),
    )
    results = {
        "result": OcrResult(
            request_id="3",
            text="Save changes?",
            lines=[line],
            confidence=0.98,
            engine="null",
            width=1920,
            height=1080,
            timings=Timings(engine_ms=0.125, total_ms=0.25),
            checksum="1a2b3c4d",
        ),
        "result_empty": OcrResult(request_id="4", engine="null", width=1, height=1, warnings=["no text found"]),
        "result_stream": OcrResult(
            request_id="5",
            engine="null",
            width=64,
            height=32,
            stream=StreamInfo(
                name="screen",
                frame=7,
                keyframe=False,
                tiles=8,
                changed_tiles=1,
                rects=[Roi(x=0, y=0, width=8, height=8)],
                read_pixels=256,
                reused_lines=1,
                added=[line],
                removed=[],
                merge_ms=0.5,
            ),
        ),
    }
    for rid, (name, result) in enumerate(results.items(), start=3):
        yield _built(f"service/{name}", "service", conn.send_result_json(rid, result.model_dump_json().encode()))
    errors: list[tuple[int, ShmBridgeError]] = [
        (0, SessionLimitExceeded("the service already holds 64 sessions")),
        (0, ProtocolError("ALLOC is not allowed in state await_hello", code=ErrorCode.UNEXPECTED_FRAME)),
        (9, InvalidRequest("slot 7 does not exist (0..3)", code=ErrorCode.BAD_SLOT)),
        (10, Busy("the queue is full", retry_after=0.25)),
    ]
    for index, (rid, exc) in enumerate(errors):
        # An error about the connection is its last word: each comes from a connection of its own.
        sender = conn if rid else _service_connection(*([p.Hello(1)] if index == 0 else []))
        yield _built(f"service/error_{index}_{exc.code.name.lower()}", "service", sender.send(p.Error.of(rid, exc)))
    yield _built("service/bye", "service", conn.send(p.Bye(0, "the service is shutting down")))


def _service_connection(*received: Any) -> wire.Connection:
    """The service's side of a connection that has received ``received``."""
    conn = wire.Connection(wire.Role.SERVICE)
    for event in received:
        conn.receive_data(p.encode(event))
        assert conn.next_event() == event
    return conn


def _built(name: str, sender: str, data: bytes, fds: int = 0) -> Case:
    decoder = p.FrameDecoder(1 << 30)
    decoder.receive_data(data)
    frame = decoder.next_frame()
    assert frame is not None and decoder.pending == 0, name
    return Case(name, sender, p.decode_event(frame), data, fds)


def all_cases() -> list[Case]:
    return [*codec_cases(), *client_cases(), *service_cases()]


def to_json(cases: list[Case]) -> str:
    rows = [
        {
            "name": c.name,
            "sender": c.sender,
            "event": type(c.event).__name__,
            "fields": fields_of(c.event),
            "fds": c.fds,
            "hex": c.data.hex(),
        }
        for c in cases
    ]
    doc = {
        "protocol_version": 1,
        "about": "Frames of protocol version 1, byte for byte (tests/bridge/protocol_v1_cases.py writes them).",
        "pid": PID,
        "config": CONFIG,
        "frames": rows,
    }
    return json.dumps(doc, indent=1) + "\n"


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(to_json(all_cases()))
    print(f"wrote {FIXTURE} ({len(all_cases())} frames)", file=sys.stderr)
