"""Every public method of both clients with one transport down: HTTP down (a service with ``--no-http``,
the client pointed at a closed port), and the session down (a service with ``--no-shm``). Each either
works over the other transport or raises a typed ``ShmBridgeError``; none raises anything else. The
first case caught ``AsyncClient.info()`` raising ``AttributeError`` (its session had no ``welcome``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shmbridge import AsyncClient, Client, RetryPolicy, Timeouts
from shmbridge.errors import ShmBridgeError
from tests.support.service import RunningService, free_port, running_service

NO_RETRY = RetryPolicy(attempts=1)
TIMEOUTS = Timeouts(request=5.0, connect=2.0)


@pytest.fixture(scope="module")
def shm_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("no-http"), http=False) as service:
        yield service


@pytest.fixture(scope="module")
def http_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("no-shm"), shm=False) as service:
        yield service


def _frame() -> np.ndarray:
    return np.full((48, 64, 3), 200, np.uint8)


def _outcome(call: Any) -> str:
    """What one call did: ``ok``, or the name of the typed error it raised (anything else fails)."""
    try:
        call()
    except ShmBridgeError as exc:
        assert str(exc), "a typed error says what went wrong"
        return type(exc).__name__
    return "ok"


async def _async_outcome(call: Any) -> str:
    try:
        await call()
    except ShmBridgeError as exc:
        assert str(exc)
        return type(exc).__name__
    return "ok"


def _shared_calls(client: Client | AsyncClient) -> dict[str, Any]:
    """The calls both twins make the same way (the async ones return coroutines to await)."""
    return {
        "ocr": lambda: client.ocr(_frame()),
        "ocr_batch": lambda: client.ocr_batch([_frame(), _frame()]),
        "detect_text": lambda: client.detect_text(_frame()),
        "close_stream": lambda: client.close_stream("down"),
        "info": client.info,
        "health": client.health,
        "metrics": client.metrics,
        "diagnose": client.diagnose,
    }


def _sync_calls(client: Client) -> dict[str, Any]:
    def frame() -> None:
        with client.frame(48, 64, 3) as array:
            array[:] = 7
            client.ocr(array)

    def stream() -> None:
        with client.stream("down") as frames:
            frames.ocr(_frame())
            frames.ocr(_frame())

    return {**_shared_calls(client), "frame": frame, "stream": stream}


def _async_calls(client: AsyncClient) -> dict[str, Any]:
    async def frame() -> None:
        async with client.frame(48, 64, 3) as array:
            array[:] = 7
            await client.ocr(array)

    async def stream() -> None:
        async with client.stream("down") as frames:
            await frames.ocr(_frame())
            await frames.ocr(_frame())

    return {**_shared_calls(client), "frame": frame, "stream": stream}


#: With HTTP down: everything that OCRs goes over the session, ``info`` comes from the WELCOME, and
#: only the HTTP-only reads fail (typed).
HTTP_DOWN = {
    "ocr": "ok", "ocr_batch": "ok", "detect_text": "ok", "frame": "ok", "stream": "ok",
    "close_stream": "ok", "info": "ok", "health": "ServiceUnavailable", "metrics": "ServiceUnavailable",
    "diagnose": "ok",
}  # fmt: skip
#: With the session down: everything goes over HTTP.
SESSION_DOWN = dict.fromkeys(HTTP_DOWN, "ok")


def test_the_sync_client_with_http_down(shm_only: RunningService) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, socket=shm_only.socket_path, retry=NO_RETRY, timeout=TIMEOUTS) as client:
        assert client.session_active
        outcomes = {name: _outcome(call) for name, call in _sync_calls(client).items()}
        assert client.info()["source"] == "session"
    assert outcomes == HTTP_DOWN


def test_the_async_client_with_http_down(shm_only: RunningService) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def main() -> tuple[dict[str, str], dict[str, Any]]:
        async with AsyncClient(url, socket=shm_only.socket_path, retry=NO_RETRY, timeout=TIMEOUTS) as client:
            outcomes = {name: await _async_outcome(call) for name, call in _async_calls(client).items()}
            return outcomes, await client.info()

    outcomes, info = asyncio.run(main())
    assert outcomes == HTTP_DOWN
    assert info["source"] == "session" and info["session_id"]


def test_the_sync_client_with_the_session_down(http_only: RunningService, tmp_path: Path) -> None:
    absent = tmp_path / "no.sock"
    with Client(http_only.url, socket=absent, retry=NO_RETRY, timeout=TIMEOUTS) as client:
        assert not client.session_active
        outcomes = {name: _outcome(call) for name, call in _sync_calls(client).items()}
        assert client.ocr(_frame()).communication_mode in {"http", "http_fallback"}
    assert outcomes == SESSION_DOWN


def test_the_async_client_with_the_session_down(http_only: RunningService, tmp_path: Path) -> None:
    absent = tmp_path / "no.sock"

    async def main() -> tuple[dict[str, str], str]:
        async with AsyncClient(http_only.url, socket=absent, retry=NO_RETRY, timeout=TIMEOUTS) as client:
            outcomes = {name: await _async_outcome(call) for name, call in _async_calls(client).items()}
            return outcomes, (await client.ocr(_frame())).communication_mode

    outcomes, mode = asyncio.run(main())
    assert outcomes == SESSION_DOWN
    assert mode in {"http", "http_fallback"}
