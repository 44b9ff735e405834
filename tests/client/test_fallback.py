"""When shared memory cannot serve a call, HTTP does, the call says ``http_fallback``, and the session comes back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import shmbridge
from shmbridge import Client, Mode, RetryPolicy, Timeouts
from tests.support.service import RunningService, metric, running_service

from .helpers import FULL, full_checksum, image, sever_session

FAST_RETRY = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2, jitter=0.1)


def _until_shared_memory(client: Client, limit: float = 10.0) -> list[str]:
    """Call until a call goes over shared memory again (bounded); returns the modes seen."""
    seen: list[str] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        seen.append(client.ocr(image(len(seen))).communication_mode)
        if seen[-1] == "shared_memory":
            break
        time.sleep(0.05)
    return seen


def test_a_dropped_session_falls_back_then_returns(own_service: RunningService) -> None:
    with Client(own_service.url, retry=FAST_RETRY) as client:
        assert client.ocr(image(1)).communication_mode == "shared_memory"
        assert sever_session(own_service.socket_path) == 1
        array = image(2)
        result = client.ocr(array)
        assert result.communication_mode == "http_fallback"
        assert result.checksum == full_checksum(array)
        seen = _until_shared_memory(client)
        assert seen[-1] == "shared_memory"  # reconnected, without a new Client
    fallbacks = metric(own_service.metrics_text(), "shmbridge_fallbacks_total")
    assert fallbacks == 1 + seen.count("http_fallback")  # every fallback call was marked as one


def test_a_session_that_stops_answering_falls_back(tmp_path: Path) -> None:
    """The engine takes 1.5 s; the session timeout is 0.3 s: the call is served over HTTP instead."""
    slow = ("--engine-option", "delay_ms=1500", "--workers", "2")
    with running_service(tmp_path, *slow) as service:
        timeouts = Timeouts(request=20.0, session=0.3)
        with Client(service.url, timeout=timeouts, retry=FAST_RETRY) as client:
            assert client.session_active
            result = client.ocr(image(3))
            assert result.communication_mode == "http_fallback"
            assert result.total_time_ms > result.processing_time_ms
        with Client(service.url, timeout=timeouts, mode=Mode.SHM) as client, pytest.raises(shmbridge.RequestTimeout):
            client.ocr(image(4))


def test_the_session_limit_sends_the_second_client_over_http(tmp_path: Path) -> None:
    limited = running_service(tmp_path, *FULL, "--max-sessions", "1")
    with limited as service, Client(service.url) as first, Client(service.url, retry=FAST_RETRY) as second:
        assert first.ocr(image(5)).communication_mode == "shared_memory"
        result = second.ocr(image(6))
        assert result.communication_mode == "http_fallback"
        assert result.checksum == full_checksum(image(6))
        with Client(service.url, mode=Mode.SHM) as third, pytest.raises(shmbridge.SessionLimitExceeded):
            third.ocr(image(7))
        first.close()  # the one session is free again: the second client takes it
        assert _until_shared_memory(second)[-1] == "shared_memory"


def test_a_frame_over_the_session_byte_limit_goes_over_http(tmp_path: Path) -> None:
    with running_service(tmp_path, *FULL, "--session-bytes", str(1 << 20)) as service:
        big = image(8, 800, 600)  # 1.44 MB: no slot of its size fits in a 1 MiB session
        with Client(service.url) as client:
            assert client.ocr(image(9)).communication_mode == "shared_memory"
            result = client.ocr(big)
            assert result.communication_mode == "http_fallback"
            assert result.checksum == full_checksum(big)
            assert client.ocr(image(10)).communication_mode == "shared_memory"  # the session stayed
            with client.frame(800, 600) as frame:  # no slot for it either: an ordinary array, sent over HTTP
                frame[:] = big
                assert client.ocr(frame).communication_mode == "http_fallback"
        with Client(service.url, mode=Mode.SHM) as client, pytest.raises(shmbridge.MemoryLimitExceeded):
            client.ocr(big)


def test_async_client_falls_back_and_reconnects_in_the_background(own_service: RunningService) -> None:
    async def main() -> None:
        async with shmbridge.AsyncClient(own_service.url, retry=FAST_RETRY) as client:
            assert (await client.ocr(image(1))).communication_mode == "shared_memory"
            assert sever_session(own_service.socket_path) == 1
            result = await client.ocr(image(2))
            assert result.communication_mode == "http_fallback"
            deadline = time.monotonic() + 10
            while not client.session_active and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the reconnect task works meanwhile
            assert (await client.ocr(image(3))).communication_mode == "shared_memory"

    asyncio.run(main())
