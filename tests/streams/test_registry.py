"""The stream registry: names, limits, the idle TTL of HTTP clients' streams, and state freed with its
owner. Frames are read by the real null engine (these tests are about lifetimes, not text)."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from shmbridge.engines import create_engine
from shmbridge.errors import (
    ErrorCode,
    InvalidRequest,
    InvalidStreamName,
    LimitExceeded,
    StreamLimitExceeded,
    error_from_code,
)
from shmbridge.models import PixelFormat
from shmbridge.service.engine_pool import EnginePool
from shmbridge.streams import engine_reader
from shmbridge.streams.registry import StreamLimits, StreamOwner, StreamRegistry, check_name

FRAME = np.full((64, 96, 3), 200, dtype=np.uint8)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def null_reader():  # type: ignore[no-untyped-def]
    engine = create_engine("null")
    yield engine_reader(engine, PixelFormat.RGB)
    engine.close()


@pytest.mark.parametrize("name", ["", "-x", ".hidden", "a b", "x" * 65, "screen/1", "é", None, 7])
def test_bad_names_are_refused_with_a_typed_error(name: object) -> None:
    with pytest.raises(InvalidStreamName) as caught:
        check_name(name)
    assert isinstance(caught.value, InvalidRequest) and caught.value.http_status == 400
    assert "1-64 letters" in caught.value.message
    rebuilt = error_from_code(caught.value.code.name, caught.value.message)
    assert type(rebuilt) is InvalidStreamName


@pytest.mark.parametrize("name", ["screen", "a", "Screen-2.main_1", "x" * 64])
def test_good_names_pass(name: str) -> None:
    assert check_name(name) == name


def test_limits_per_session_per_client_and_in_total(null_reader) -> None:  # type: ignore[no-untyped-def]
    registry = StreamRegistry(StreamLimits(per_session=2, per_client=1, total=3))
    session, other, client = StreamOwner("session", 1), StreamOwner("session", 2), StreamOwner("http", "key")
    registry.read(session, "a", FRAME, null_reader)
    registry.read(session, "b", FRAME, null_reader)
    assert registry.acquire(session, "a") is registry.acquire(session, "a")  # an existing name is no new stream
    with pytest.raises(StreamLimitExceeded, match="session already has 2 streams"):
        registry.acquire(session, "c")
    registry.acquire(client, "a")
    with pytest.raises(StreamLimitExceeded, match="client already has 1 streams"):
        registry.acquire(client, "b")
    with pytest.raises(StreamLimitExceeded, match="the service holds 3 streams") as caught:
        registry.acquire(other, "a")
    assert isinstance(caught.value, LimitExceeded) and caught.value.code is ErrorCode.STREAM_LIMIT
    assert registry.close(session, "b") and not registry.close(session, "b")
    registry.acquire(other, "a")
    assert len(registry) == 3


def test_a_stream_over_its_state_limit_is_freed_with_a_typed_error(null_reader) -> None:  # type: ignore[no-untyped-def]
    registry = StreamRegistry(StreamLimits(state_bytes=1000))
    owner = StreamOwner("session", 1)
    big = np.zeros((512, 512, 3), dtype=np.uint8)
    with pytest.raises(StreamLimitExceeded, match="bytes of state"):
        registry.read(owner, "big", big, null_reader)
    assert len(registry) == 0
    registry.read(owner, "small", FRAME[:32, :32], null_reader)  # 1 tile: within the limit
    assert registry.names(owner) == ["small"]


def test_http_streams_expire_after_the_idle_ttl_and_session_streams_do_not(null_reader) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    registry = StreamRegistry(StreamLimits(idle_ttl=30.0), clock=clock)
    client, session = StreamOwner("http", "key"), StreamOwner("session", 1)
    registry.read(client, "idle", FRAME, null_reader)
    registry.read(client, "busy", FRAME, null_reader)
    registry.read(session, "screen", FRAME, null_reader)
    clock.now = 20.0
    registry.read(client, "busy", FRAME, null_reader)
    clock.now = 31.0
    assert registry.sweep() == 1
    assert registry.names(client) == ["busy"] and registry.names(session) == ["screen"]
    clock.now = 1000.0
    step = registry.read(client, "idle", FRAME, null_reader)  # acquire sweeps first: a new stream
    assert step.info.keyframe and step.info.reason == "first"
    assert registry.names(client) == ["idle"] and registry.names(session) == ["screen"]


def test_state_is_freed_when_its_owner_ends_with_no_growth_over_200_sessions(null_reader) -> None:  # type: ignore[no-untyped-def]
    registry = StreamRegistry()
    alive: list[weakref.ref[object]] = []
    for index in range(200):
        owner = StreamOwner("session", index)
        for name in ("screen", "dialog"):
            registry.read(owner, name, FRAME, null_reader)
            alive.append(weakref.ref(registry.acquire(owner, name)))
        assert registry.release(owner) == 2
        assert len(registry) == 0 and registry.state_bytes == 0
    gc.collect()
    assert [ref for ref in alive if ref() is not None] == []
    assert registry.release(StreamOwner("session", 0)) == 0


def test_the_service_engine_pool_reads_through_the_same_callable() -> None:
    pool = EnginePool("null", {}, 1)
    try:
        recognize = engine_reader(
            pool, PixelFormat.RGB, run=lambda image, fmt, opts: pool.run_sync(image, fmt, opts)[0]
        )
        registry = StreamRegistry()
        owner = StreamOwner("session", 1)
        assert registry.read(owner, "screen", FRAME, recognize).info.reason == "first"
        assert registry.read(owner, "screen", FRAME, recognize).info.changed_tiles == 0
    finally:
        pool.close()
