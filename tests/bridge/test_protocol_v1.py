"""Protocol version 1, byte for byte: every frame pinned in ``data/protocol_v1.json`` decodes to the events it
was built from and encodes back to the same bytes, and today's client and service code still build them.

The fixture was captured from the code before the wire package existed (``protocol_v1_cases.py``); a
change that alters one byte of it is a new protocol version, not a refactor.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import pytest

from shmbridge import protocol as p
from shmbridge.memory import MemoryBudget, SessionMemory, seals_of
from shmbridge.unixsock import recv_with_fds
from tests.bridge.protocol_v1_cases import EVENT_TYPES, FIXTURE, all_cases, event_from, fields_of

DOC = json.loads(FIXTURE.read_text())
ROWS: list[dict[str, Any]] = DOC["frames"]
CLIENT_SENDS = {"Hello", "Alloc", "OcrRequest", "Bye"}
SERVICE_SENDS = {"Welcome", "SegmentGranted", "Result", "Error", "Bye"}


def _decode(data: bytes) -> tuple[p.RawFrame, p.Event]:
    decoder = p.FrameDecoder(1 << 30)
    decoder.receive_data(data)
    frame = decoder.next_frame()
    assert frame is not None and decoder.pending == 0
    return frame, p.decode_event(frame)


def test_the_fixture_covers_every_frame_type_both_ways() -> None:
    assert DOC["protocol_version"] == p.VERSION == 1
    sent = {(row["sender"], row["event"]) for row in ROWS}
    assert {("client", name) for name in CLIENT_SENDS} | {("service", name) for name in SERVICE_SENDS} <= sent
    assert {row["event"] for row in ROWS} == set(EVENT_TYPES) and len(EVENT_TYPES) == len(p.FrameType)


@pytest.mark.parametrize("row", ROWS, ids=[row["name"] for row in ROWS])
def test_each_frame_decodes_to_its_fields_and_encodes_back_byte_for_byte(row: dict[str, Any]) -> None:
    data = bytes.fromhex(row["hex"])
    frame, event = _decode(data)
    magic, version, frame_type, flags, request_id, length = p.HEADER.unpack_from(data)
    assert (magic, version, length) == (b"SHMB", 1, len(data) - p.HEADER_SIZE)
    assert type(event).__name__ == row["event"]
    assert frame_type == frame.frame_type and request_id == event.request_id
    assert bool(flags & p.FLAG_HAS_FD) == (row["fds"] == 1) and flags & ~p.FLAG_HAS_FD == 0
    assert fields_of(event) == row["fields"]
    assert p.encode(event) == data
    assert p.encode(event_from(row["event"], row["fields"])) == data


@pytest.mark.parametrize("row", [r for r in ROWS if r["sender"] == "client"], ids=lambda r: r["name"])
def test_the_service_side_reads_each_client_frame_alike(row: dict[str, Any]) -> None:
    """The service's connection (with the one-``unpack`` path for plain OCR requests) sees the same event."""
    conn = p.ServerConnection(1 << 20)
    if row["event"] not in ("Hello", "Bye"):
        conn.receive_data(p.encode(p.Hello(1)))
        assert isinstance(conn.next_event(), p.Hello)
        conn.welcomed()
    conn.receive_data(bytes.fromhex(row["hex"]))
    event = conn.next_event()
    assert event is not None and fields_of(event) == row["fields"]
    assert conn.next_event() is None


def test_todays_client_and_service_code_build_the_same_bytes() -> None:
    built = {case.name: case for case in all_cases()}
    assert sorted(built) == sorted(row["name"] for row in ROWS)
    for row in ROWS:
        case = built[row["name"]]
        assert (case.sender, case.fds) == (row["sender"], row["fds"]), row["name"]
        assert case.data.hex() == row["hex"], row["name"]


def test_a_segment_travels_with_exactly_one_sealed_fd_of_its_size() -> None:
    """SEGMENT as the service sends it: the fd on the frame's first byte, ``slot_size * slot_count`` bytes,
    sealed against shrinking, growing and resealing (Linux)."""
    row = next(r for r in ROWS if r["name"] == "service/segment")
    memory = SessionMemory(MemoryBudget(1 << 30, 4), session_bytes=1 << 28, max_frame_bytes=1 << 27)
    service_side, client_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fds: list[int] = []
    try:
        segment = memory.allocate(1920 * 1080 * 3, row["fields"]["slot_count"])
        granted = p.SegmentGranted(row["fields"]["request_id"], segment.id, segment.slot_size, segment.slot_count)
        data = p.encode(granted)
        assert data.hex() == row["hex"]
        assert socket.send_fds(service_side, [data], [segment.fd]) == len(data)
        received, fds = recv_with_fds(client_side, 65536)
        assert received == data and len(fds) == 1
        assert os.fstat(fds[0]).st_size == segment.slot_size * segment.slot_count
        if hasattr(os, "memfd_create"):
            import fcntl

            assert seals_of(fds[0]) == fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
    finally:
        for fd in fds:
            os.close(fd)
        service_side.close()
        client_side.close()
        memory.close()
