"""Every kind of bad input gets a typed error frame or a clean, logged disconnect; the service stays up."""

from __future__ import annotations

import time

import pytest

from shmbridge import protocol as p
from shmbridge.client.session import SessionClient
from shmbridge.errors import ErrorCode
from tests.support.rawpeer import RawPeer
from tests.support.service import RunningService, shm_fds, wait_until


def assert_service_healthy(service: RunningService) -> None:
    assert service.alive(), service.log()
    with SessionClient(service.socket_path, timeout=10) as session:
        assert session.ocr_copy(__import__("numpy").zeros((8, 8, 3), "uint8")).checksum is not None


def expect_error(peer: RawPeer, code: ErrorCode, request_id: int | None = None) -> p.Error:
    event = peer.read_event()
    assert isinstance(event, p.Error), event
    assert event.code == code, (ErrorCode(event.code), event.message)
    assert event.message
    if request_id is not None:
        assert event.request_id == request_id
    return event


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ErrorCode.BAD_MAGIC),
        (p.HEADER.pack(p.MAGIC, 99, p.FrameType.HELLO, 0, 1, 0), ErrorCode.BAD_VERSION),
        (p.HEADER.pack(p.MAGIC, 1, p.FrameType.HELLO, 0, 1, 2**32 - 1), ErrorCode.FRAME_TOO_LARGE),
        (p.encode(p.OcrRequest(5, 1, 0, 0, 10, 10, 3, "rgb", 30)), ErrorCode.UNEXPECTED_FRAME),
        (p.encode(p.Hello(1, versions=(7, 8))), ErrorCode.BAD_VERSION),
    ],
    ids=["bad-magic", "bad-version", "length-over-limit", "request-before-hello", "no-common-version"],
)
def test_stream_errors_end_the_session_with_a_code(null_service: RunningService, data: bytes, code: ErrorCode) -> None:
    with RawPeer(null_service.socket_path) as peer:
        peer.send(data)
        expect_error(peer, code)
        assert peer.wait_closed()
    assert_service_healthy(null_service)


def test_truncated_frame_then_eof_is_a_logged_disconnect(null_service: RunningService) -> None:
    with RawPeer(null_service.socket_path) as peer:
        peer.send(p.encode(p.Hello(1))[:-5])
    assert wait_until(lambda: "TRUNCATED" in null_service.log(), timeout=10), null_service.log()
    assert_service_healthy(null_service)


def _ready_peer(service: RunningService) -> tuple[RawPeer, p.SegmentGranted]:
    peer = RawPeer(service.socket_path)
    peer.handshake()
    return peer, peer.alloc(64 * 64 * 3, slots=2)


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"slot": 7}, ErrorCode.BAD_SLOT),
        ({"segment": 42}, ErrorCode.BAD_SLOT),
        ({"offset": 64 * 1024 - 100}, ErrorCode.OUT_OF_BOUNDS),
        ({"offset": 2**64 - 1}, ErrorCode.OUT_OF_BOUNDS),
        ({"height": 2**32 - 1, "width": 2**32 - 1, "pitch": 2**40}, ErrorCode.OUT_OF_BOUNDS),
        ({"pitch": 10}, ErrorCode.SHAPE_MISMATCH),
        ({"pixel_format": "rgba"}, ErrorCode.SHAPE_MISMATCH),
        ({"channels": 2, "pitch": 128}, ErrorCode.BAD_DIMENSIONS),
        ({"height": 0}, ErrorCode.BAD_DIMENSIONS),
        ({"width": 0}, ErrorCode.BAD_DIMENSIONS),
        ({"options": {"colour": "blue"}}, ErrorCode.UNKNOWN_OPTION),
        ({"options": {"recognition_level": "psychic"}}, ErrorCode.INVALID_REQUEST),
        ({"roi": (60, 60, 10, 10)}, ErrorCode.OUT_OF_BOUNDS),
    ],
)
def test_bad_requests_get_an_error_and_the_session_goes_on(
    null_service: RunningService, request_kwargs: dict[str, object], code: ErrorCode
) -> None:
    peer, granted = _ready_peer(null_service)
    with peer:
        fields = {"request_id": 10, "segment": granted.segment, "slot": 0, "offset": 0, "height": 64,
                  "width": 64, "channels": 3, "pixel_format": "rgb", "pitch": 192}  # fmt: skip
        fields.update(request_kwargs)
        peer.send_event(p.OcrRequest(**fields))  # type: ignore[arg-type]
        expect_error(peer, code, request_id=10)
        # The same session still works, and the slot was not left lent.
        peer.send_event(p.OcrRequest(11, granted.segment, 0, 0, 64, 64, 3, "rgb", 192))
        reply = peer.read_event()
        assert isinstance(reply, p.Result), reply
        assert reply.request_id == 11


def test_unsupported_dtype_and_pixel_format_codes(null_service: RunningService) -> None:
    peer, granted = _ready_peer(null_service)
    with peer:
        body = p.OCR_STRUCT.pack(granted.segment, 0, 0, 8, 8, 3, 9, 1, 0, 24, 0, 0, 0, 0)
        peer.send(p.HEADER.pack(p.MAGIC, 1, p.FrameType.OCR_REQUEST, 0, 20, len(body)) + body)
        expect_error(peer, ErrorCode.SHAPE_MISMATCH, request_id=20)
        body = p.OCR_STRUCT.pack(granted.segment, 0, 0, 8, 8, 3, 1, 77, 0, 24, 0, 0, 0, 0)
        peer.send(p.HEADER.pack(p.MAGIC, 1, p.FrameType.OCR_REQUEST, 0, 21, len(body)) + body)
        expect_error(peer, ErrorCode.SHAPE_MISMATCH, request_id=21)
        peer.send(p.HEADER.pack(p.MAGIC, 1, p.FrameType.OCR_REQUEST, 0, 22, 3) + b"abc")
        expect_error(peer, ErrorCode.TRUNCATED, request_id=22)
        peer.send(p.HEADER.pack(p.MAGIC, 1, 200, 0, 23, 0))
        expect_error(peer, ErrorCode.UNKNOWN_FRAME_TYPE, request_id=23)


def test_a_slot_already_lent_is_refused(slow_service: RunningService) -> None:
    peer, granted = _ready_peer(slow_service)
    with peer:
        peer.send_event(p.OcrRequest(30, granted.segment, 0, 0, 64, 64, 3, "rgb", 192))
        peer.send_event(p.OcrRequest(31, granted.segment, 0, 0, 64, 64, 3, "rgb", 192))
        expect_error(peer, ErrorCode.SLOT_IN_USE, request_id=31)
        reply = peer.read_event()
        assert isinstance(reply, p.Result) and reply.request_id == 30


def test_absurd_alloc_is_refused_with_a_limit_error(null_service: RunningService) -> None:
    with RawPeer(null_service.socket_path) as peer:
        peer.handshake()
        peer.send_event(p.Alloc(3, 2**40, 1))
        expect_error(peer, ErrorCode.MEMORY_LIMIT, request_id=3)
        peer.send_event(p.Alloc(4, 0, 1))
        expect_error(peer, ErrorCode.BAD_DIMENSIONS, request_id=4)


def test_bad_input_leaks_nothing(null_service: RunningService) -> None:
    for _ in range(5):
        peer, granted = _ready_peer(null_service)
        with peer:
            peer.send_event(p.OcrRequest(10, granted.segment, 9, 0, 64, 64, 3, "rgb", 192))
            expect_error(peer, ErrorCode.BAD_SLOT)
            peer.send(b"garbage" * 10)
            expect_error(peer, ErrorCode.BAD_MAGIC)
    assert wait_until(lambda: not shm_fds(null_service.pid), timeout=10), shm_fds(null_service.pid)
    time.sleep(0.1)
    assert_service_healthy(null_service)
