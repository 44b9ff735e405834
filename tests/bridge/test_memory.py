"""Segments, seals, views and limits: the memory module on its own, with real memfds."""

from __future__ import annotations

import fcntl
import mmap
import os
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shmbridge.errors import ErrorCode, InvalidRequest, MemoryLimitExceeded, SessionLimitExceeded
from shmbridge.memory import PAGE, MemoryBudget, Segment, SessionMemory, check_image_bounds, seals_of, size_class

MiB = 1024 * 1024
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memfd seals are Linux-only")


@pytest.mark.parametrize(
    ("nbytes", "expected"),
    [
        (1, 64 * 1024),
        (64 * 64 * 3, 64 * 1024),
        (1920 * 1080 * 3, 6 * MiB),
        (3840 * 2160 * 3, 24 * MiB),
        (1920 * 1080 * 4, 8 * MiB),
        (8 * MiB + 1, 12 * MiB),
    ],
)
def test_size_classes_fit_with_bounded_waste(nbytes: int, expected: int) -> None:
    assert size_class(nbytes) == expected
    assert size_class(nbytes) % PAGE == 0
    assert size_class(nbytes) < max(2 * nbytes, 64 * 1024 + 1) or nbytes <= 64 * 1024


@linux_only
def test_segment_is_sealed_against_resizing() -> None:
    segment = Segment.create(1, 64 * 1024, 2)
    try:
        seals = seals_of(segment.fd)
        assert seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_GROW and seals & fcntl.F_SEAL_SEAL
        with pytest.raises(PermissionError):
            os.ftruncate(segment.fd, 4096)
        with pytest.raises(PermissionError):
            os.ftruncate(segment.fd, segment.nbytes * 2)
    finally:
        segment.close()


def test_client_writes_are_seen_through_the_read_only_service_view() -> None:
    service = Segment.create(1, 64 * 1024, 2)
    client = Segment.attach(1, os.dup(service.fd), 64 * 1024, 2)
    try:
        frame = client.slot_buffer(1)[: 10 * 20 * 3].reshape(10, 20, 3)
        frame[:] = np.arange(600, dtype=np.uint8).reshape(10, 20, 3)
        view = service.image_view(1, 0, 10, 20, 3, 60)
        assert np.array_equal(view, frame)
        assert not view.flags.writeable
        with pytest.raises(ValueError):
            view[0, 0, 0] = 1
        # Same physical pages, not a copy: a later write shows through.
        frame[0, 0, 0] = 250
        assert view[0, 0, 0] == 250
        del view, frame
    finally:
        client.close()
        service.close()


def test_service_mapping_is_read_only_at_the_page_level() -> None:
    service = Segment.create(1, 64 * 1024, 1)
    try:
        raw = mmap.mmap(service.fd, service.nbytes, prot=mmap.PROT_READ)
        with pytest.raises(TypeError):
            raw[0] = 1
        raw.close()
    finally:
        service.close()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((5, 0, 10, 10, 3, 30), ErrorCode.BAD_SLOT),
        ((0, 0, 0, 10, 3, 30), ErrorCode.BAD_DIMENSIONS),
        ((0, 0, 10, 10, 2, 30), ErrorCode.BAD_DIMENSIONS),
        ((0, 0, 10, 10, 3, 29), ErrorCode.SHAPE_MISMATCH),
        ((0, 64 * 1024 - 10, 10, 10, 3, 30), ErrorCode.OUT_OF_BOUNDS),
        ((0, 2**64 - 1, 1, 1, 3, 3), ErrorCode.OUT_OF_BOUNDS),
        ((0, 0, 2**31, 2**31, 3, 2**33), ErrorCode.OUT_OF_BOUNDS),
        ((1, 0, 200, 200, 3, 600), ErrorCode.OUT_OF_BOUNDS),
    ],
)
def test_views_outside_the_slot_are_refused(args: tuple[int, ...], code: ErrorCode) -> None:
    segment = Segment.create(1, 64 * 1024, 2)
    try:
        with pytest.raises(InvalidRequest) as info:
            segment.image_view(*args)
        assert info.value.code == code
    finally:
        segment.close()


def test_a_new_session_waits_briefly_for_one_that_is_ending() -> None:
    budget = MemoryBudget(total_bytes=MiB, max_sessions=1)
    budget.open_session()
    leaving = threading.Timer(0.05, budget.close_session)  # the old session's thread reads its BYE late
    leaving.start()
    try:
        budget.open_session(wait=5.0)  # returns once the place is free, long before the wait is over
    finally:
        leaving.join()
    assert budget.sessions == 1
    started = time.monotonic()
    with pytest.raises(SessionLimitExceeded):
        budget.open_session(wait=0.1)  # nobody leaves: refused after the wait
    assert 0.09 <= time.monotonic() - started < 5.0  # it did wait (clock granularity aside)


def test_session_and_total_limits_are_typed_errors() -> None:
    budget = MemoryBudget(total_bytes=16 * MiB, max_sessions=1)
    budget.open_session()
    with pytest.raises(SessionLimitExceeded):
        budget.open_session()
    memory = SessionMemory(budget, session_bytes=8 * MiB, max_frame_bytes=8 * MiB)
    try:
        first = memory.allocate(1920 * 1080 * 3, 4)  # 6 MiB slots: only one fits in 8 MiB
        assert first.slot_count == 1
        with pytest.raises(MemoryLimitExceeded):
            memory.allocate(1920 * 1080 * 3, 1)
        with pytest.raises(MemoryLimitExceeded):
            memory.allocate(9 * MiB, 1)  # over the frame limit
        other = SessionMemory(budget, session_bytes=16 * MiB, max_frame_bytes=16 * MiB)
        with pytest.raises(MemoryLimitExceeded):
            other.allocate(12 * MiB, 1)  # 6 + 12 > 16 MiB in total
        assert budget.used_bytes == 6 * MiB
    finally:
        memory.close()
    assert budget.used_bytes == 0


def test_lending_a_slot_twice_is_refused() -> None:
    memory = SessionMemory(MemoryBudget(64 * MiB, 4), 64 * MiB, 64 * MiB)
    try:
        segment = memory.allocate(1000, 2)
        memory.lend(segment.id, 0)
        with pytest.raises(InvalidRequest) as info:
            memory.lend(segment.id, 0)
        assert info.value.code == ErrorCode.SLOT_IN_USE
        memory.give_back(segment.id, 0)
        memory.lend(segment.id, 0)
        with pytest.raises(InvalidRequest) as info:
            memory.lend(99, 0)
        assert info.value.code == ErrorCode.BAD_SLOT
    finally:
        memory.close()


# -- the bounds check: its one-expression fast path accepts exactly what the named checks accept ----------

_BIG = 1 << 48
_fields = st.one_of(st.integers(-3, 64), st.sampled_from([0, 1, _BIG - 1, _BIG, _BIG + 1, -_BIG]))


def _in_bounds(slot_count: int, slot_size: int, slot: int, offset: int, h: int, w: int, c: int, pitch: int) -> bool:
    """The rule as docs/protocol.md states it, written independently of memory.py."""
    if not all(0 <= v < _BIG for v in (slot, offset, h, w, pitch)):
        return False
    if not (slot < slot_count and h > 0 and w > 0 and c in (1, 3, 4) and pitch >= w * c):
        return False
    return offset + (h - 1) * pitch + w * c <= slot_size


@settings(max_examples=3000, deadline=None)
@given(
    slot_count=st.integers(1, 4),
    slot_size=st.integers(1, 4096),
    slot=_fields,
    offset=_fields,
    height=_fields,
    width=_fields,
    channels=st.integers(-1, 5),
    pitch=_fields,
)
def test_image_bounds_accept_exactly_the_images_inside_one_slot(
    slot_count: int, slot_size: int, slot: int, offset: int, height: int, width: int, channels: int, pitch: int
) -> None:
    args = (slot_count, slot_size, slot, offset, height, width, channels, pitch)
    try:
        check_image_bounds(*args)
    except InvalidRequest:
        assert not _in_bounds(*args)
    else:
        assert _in_bounds(*args)
