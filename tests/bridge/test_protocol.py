"""The wire protocol without sockets: round trips, the service's side of the state table, and fuzzing of the
frame parser (``test_wire_connection.py`` walks the whole table, both roles)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shmbridge import wire as p
from shmbridge.errors import ErrorCode, ProtocolError

EVENTS = [
    p.Hello(1, (1,), "test", 42),
    p.Welcome(1, 1, "abc", {"max_frame_bytes": 10}, {"name": "null"}),
    p.Alloc(2, 6220800, 4),
    p.SegmentGranted(2, 1, 6291456, 4),
    p.OcrRequest(3, 1, 2, 64, 1080, 1920, 3, "bgr", 5760, (10, 20, 30, 40), {"languages": ["de-DE"]}),
    p.OcrRequest(4, 1, 0, 0, 60, 300, 4, "rgba", 1200),
    p.Result(3, {"text": "hello", "lines": []}),
    p.Error(3, int(ErrorCode.BAD_SLOT), "slot 9 does not exist"),
    p.Error(0, int(ErrorCode.BUSY), "busy", retry_after=0.5),
    p.Bye(0, "done"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: p.Event) -> None:
    decoder = p.FrameDecoder()
    decoder.receive_data(p.encode(event))
    frame = decoder.next_frame()
    assert frame is not None
    assert p.decode_event(frame) == event
    assert decoder.next_frame() is None


def test_header_layout_is_twenty_little_endian_bytes() -> None:
    data = p.encode(p.Bye(7, ""))
    magic, version, frame_type, flags, rid, length = struct.unpack_from("<4sBBHQI", data)
    assert (magic, version, frame_type, flags, rid) == (b"SHMB", 1, p.FrameType.BYE, 0, 7)
    assert length == len(data) - 20 == len(b'{"reason":""}')


def test_frames_split_at_every_byte_boundary_reassemble() -> None:
    stream = b"".join(p.encode(e) for e in EVENTS)
    decoder = p.FrameDecoder()
    seen = []
    for byte in stream:
        decoder.receive_data(bytes([byte]))
        while (frame := decoder.next_frame()) is not None:
            seen.append(p.decode_event(frame))
    assert seen == EVENTS


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"XXXX" + p.encode(p.Bye())[4:], ErrorCode.BAD_MAGIC),
        (p.HEADER.pack(p.MAGIC, 9, 8, 0, 0, 0), ErrorCode.BAD_VERSION),
        (p.HEADER.pack(p.MAGIC, 1, 5, 0, 1, 1 << 31), ErrorCode.FRAME_TOO_LARGE),
    ],
)
def test_bad_headers_are_typed_errors(data: bytes, code: ErrorCode) -> None:
    decoder = p.FrameDecoder()
    decoder.receive_data(data)
    with pytest.raises(ProtocolError) as info:
        decoder.next_frame()
    assert info.value.code == code


def test_eof_inside_a_frame_is_truncated() -> None:
    decoder = p.FrameDecoder()
    decoder.receive_data(p.encode(p.Hello())[:-3])
    assert decoder.next_frame() is None
    decoder.receive_data(b"")
    with pytest.raises(ProtocolError) as info:
        decoder.next_frame()
    assert info.value.code == ErrorCode.TRUNCATED


def _service() -> p.Connection:
    return p.Connection(p.Role.SERVICE)


def _welcomed() -> p.Connection:
    """The service's side of a session that got its HELLO and sent its WELCOME."""
    conn = _service()
    conn.receive_data(p.encode(p.Hello(1)))
    assert isinstance(conn.next_event(), p.Hello)
    conn.send(p.Welcome(1, 1, "s"))
    assert conn.state is p.State.READY
    return conn


def test_short_ocr_body_is_truncated_but_keeps_the_request_id() -> None:
    conn = _welcomed()
    conn.receive_data(p.HEADER.pack(p.MAGIC, 1, p.FrameType.OCR_REQUEST, 0, 77, 4) + b"\0\0\0\0")
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.code == ErrorCode.TRUNCATED
    assert info.value.request_id == 77


def test_request_before_hello_is_refused() -> None:
    conn = _service()
    conn.receive_data(p.encode(EVENTS[4]))
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.code == ErrorCode.UNEXPECTED_FRAME
    assert info.value.request_id is None  # fatal: the session ends


def test_client_may_not_send_server_frames() -> None:
    conn = _welcomed()
    conn.receive_data(p.encode(p.Result(5, {})))
    with pytest.raises(ProtocolError) as info:
        conn.next_event()
    assert info.value.code == ErrorCode.UNEXPECTED_FRAME


def test_version_negotiation_picks_the_highest_common_version() -> None:
    assert p.negotiate((1, 2, 3)) == 1
    with pytest.raises(ProtocolError) as info:
        p.negotiate((2, 3))
    assert info.value.code == ErrorCode.BAD_VERSION


# -- fuzzing -------------------------------------------------------------------------------------


def _drain(conn: p.Connection) -> None:
    """Pull events until more data is needed; only ProtocolError may escape."""
    for _ in range(1000):
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            assert isinstance(exc.code, ErrorCode)
            if exc.request_id is None:
                return
            continue
        if event is None:
            return
        if isinstance(event, p.Hello):
            conn.send(p.Welcome(event.request_id, 1, "s"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    conn = p.Connection(p.Role.SERVICE, max_body=4096)
    conn.receive_data(data)
    _drain(conn)
    conn.receive_data(b"")
    _drain(conn)


VALID_STREAM = b"".join(p.encode(e) for e in [EVENTS[0], EVENTS[2], EVENTS[4], EVENTS[5], EVENTS[-1]])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID_STREAM) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, len(VALID_STREAM)),
)
def test_mutated_valid_frames_never_crash_the_parser(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID_STREAM)
    for index, value in flips:
        data[index] = value
    conn = p.Connection(p.Role.SERVICE, max_body=4096)
    conn.receive_data(bytes(data[:cut]))
    _drain(conn)
    conn.receive_data(bytes(data[cut:]))
    _drain(conn)
    conn.receive_data(b"")
    _drain(conn)


# -- the hot path decodes exactly like the general one ---------------------------------------------


def _outcomes(data: bytes, *, hot: bool) -> list[object]:
    """Every event (or error code) in ``data``, taking the OCR_REQUEST hot path first when ``hot``."""
    decoder = p.FrameDecoder(4096)
    decoder.receive_data(data)
    decoder.receive_data(b"")
    out: list[object] = []
    for _ in range(64):
        event = decoder.next_plain_ocr_request() if hot else None
        if event is None:
            try:
                frame = decoder.next_frame()
            except ProtocolError as exc:  # a bad header loses the stream
                out.append(exc.code)
                break
            if frame is None:
                break
            try:
                event = p.decode_event(frame)
            except ProtocolError as exc:  # a bad body loses only its frame
                out.append(exc.code)
                continue
        out.append(event)
    return out


_u32 = st.integers(0, 2**32 - 1)
_ocr_structs = st.tuples(
    _u32, _u32, st.integers(0, 2**64 - 1), _u32, _u32, st.integers(0, 255), st.sampled_from([0, 1, 2, 255]),
    st.integers(0, 6), st.integers(0, 255), st.integers(0, 2**64 - 1), _u32, _u32, st.sampled_from([0, 1, 64]), _u32,
)  # fmt: skip
_options_bodies = st.sampled_from([b"", b'{"languages": ["de"]}'])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 2**64 - 1), _ocr_structs, _options_bodies), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
)
def test_the_ocr_hot_path_decodes_like_the_general_path(
    frames: list[tuple[int, tuple[int, ...], bytes]], flips: list[tuple[int, int]]
) -> None:
    data = bytearray()
    for rid, fields, options in frames:
        body = p.OCR_STRUCT.pack(*fields) + options
        data += p.HEADER.pack(p.MAGIC, p.VERSION, p.FrameType.OCR_REQUEST, 0, rid, len(body)) + body
    for index, value in flips:
        data[index % len(data)] = value
    assert _outcomes(bytes(data), hot=True) == _outcomes(bytes(data), hot=False)
