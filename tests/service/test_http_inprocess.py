"""The HTTP app in-process, for states a live service never shows from outside.

``/health`` is 503 until the core is ready (a subprocess only opens its port once it is); a bug in a route is
a 500 in the one error shape, never a stack trace; the pure helpers refuse hostile input with typed errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from shmbridge.config import ServiceConfig
from shmbridge.errors import FrameTooLarge, InvalidRequest
from shmbridge.memory import MemoryBudget
from shmbridge.service.core import ServiceCore
from shmbridge.service.http.app import create_app
from shmbridge.service.http.images import decode_base64, parse_shape, raw_view

Session = Callable[[httpx.AsyncClient], Awaitable[None]]


def run(app: FastAPI, session: Session) -> None:
    """Run ``session`` against ``app`` in one event loop, with app errors turned into responses."""

    async def main() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
            await session(client)

    asyncio.run(main())


@pytest.fixture
def app_and_core(tmp_path) -> Iterator[tuple[FastAPI, ServiceCore]]:  # type: ignore[no-untyped-def]
    config = ServiceConfig(engine="null", warm_up=False, shm_enabled=False, region_dir=tmp_path / "regions")
    core = ServiceCore(config)
    app = create_app(core, None, MemoryBudget(config.total_bytes, config.max_sessions))
    try:
        yield app, core
    finally:
        app.state.regions.close()
        core.close()


def test_health_is_503_until_ready(app_and_core: tuple[FastAPI, ServiceCore]) -> None:
    app, core = app_and_core

    async def session(client: httpx.AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 503 and response.json()["status"] == "unavailable"
        core.ready = True
        assert (await client.get("/health")).status_code == 200
        info = (await client.get("/api/v1/bridge/info")).json()
        assert info["modes"]["shm_session"] is False and info["socket_path"] is None

    run(app, session)


def test_a_bug_is_a_500_in_the_error_shape(
    app_and_core: tuple[FastAPI, ServiceCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, core = app_and_core

    def broken() -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(core.pool, "capabilities", broken)

    async def session(client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/bridge/info")
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "INTERNAL" and "boom" not in response.text

    run(app, session)


def test_error_answers_echo_the_request_id(app_and_core: tuple[FastAPI, ServiceCore]) -> None:
    app, _ = app_and_core

    async def session(client: httpx.AsyncClient) -> None:
        headers = {"content-type": "application/octet-stream", "X-Request-Id": "r-42"}
        response = await client.post("/api/v1/ocr?height=2&width=2", content=b"\0" * 5, headers=headers)
        assert response.status_code == 400
        assert response.headers["x-request-id"] == "r-42" and response.json()["error"]["request_id"] == "r-42"

    run(app, session)


def test_pure_helpers_refuse_hostile_input() -> None:
    with pytest.raises(InvalidRequest):
        decode_base64("data:image/png,not-base64-marked")
    assert decode_base64("aGVsbG8") == b"hello"  # padding optional
    assert decode_base64("aGVs\nbG8=\n") == b"hello"  # line breaks allowed
    assert decode_base64("-_8=") == bytes([0xFB, 0xFF])  # URL-safe alphabet
    assert parse_shape("1080x1920") == (1080, 1920, 1)
    with pytest.raises(InvalidRequest):
        parse_shape("1x2x3x4")
    data = bytearray(range(24))
    view = raw_view(data, 2, 4, 3)
    assert not view.flags.writeable and np.shares_memory(view, np.frombuffer(data, np.uint8))
    with pytest.raises(InvalidRequest):
        raw_view(data, 2, 4, 3, pitch=11)
    with pytest.raises(InvalidRequest):
        raw_view(data, 0, 4, 3)


def test_frame_limits_are_typed() -> None:
    core = ServiceCore(ServiceConfig(engine="null", warm_up=False, max_pixels=100))
    try:
        with pytest.raises(FrameTooLarge):
            core.check_frame_size(11, 10, 1)
    finally:
        core.close()
