"""``Client.diagnose()`` and ``AsyncClient.diagnose()``: test each step from here to the service, report why.

Owns the typed report (``Diagnosis``) and the steps, in order: the HTTP URL answers; which socket path, and
where it came from; the socket accepts a connection; the service accepts this peer (uid/gid) and completes
the handshake; one small test frame makes the round trip over shared memory (and its time). The first step
that fails gives ``fallback_reason``: what a call would go over HTTP for. Each step opens its own connection
and session, so the client's own session and counters are never touched. It must never raise for a step
that fails (that is the answer), and never leave a socket or a session open.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from ..environment import SOCKET_VARIABLE
from ..errors import PeerRejected, ShmBridgeError
from ..wire import Welcome
from .base import socket_from_info
from .session import SessionClient
from .session_async import AsyncSessionClient

if TYPE_CHECKING:
    from .async_client import AsyncClient
    from .sync_client import Client

#: The test frame: small enough to cost nothing in any engine, big enough to need a real slot.
TEST_FRAME = (32, 32, 3)


class Diagnosis(BaseModel):
    """Each step from this process to the service; ``None`` means the step was not reached."""

    url: str
    url_reachable: bool
    url_error: str | None = None
    service_ready: bool | None = None
    socket_path: str | None = None
    #: ``argument``, ``SHMBRIDGE_SOCKET_PATH``, ``SHMBRIDGE_SOCKET (deprecated)``, ``service`` (advertised
    #: by the URL's ``/api/v1/bridge/info``) or ``None`` (no socket known).
    socket_source: str | None = None
    socket_reachable: bool | None = None
    peer_accepted: bool | None = None
    handshake: bool | None = None
    protocol_version: int | None = None
    engine: str | None = None
    round_trip: bool | None = None
    round_trip_ms: float | None = None
    fallback_reason: str | None = None

    @property
    def shared_memory(self) -> bool:
        """A test frame went over shared memory and back."""
        return bool(self.round_trip)

    @property
    def socket_asked_for(self) -> bool:
        """The caller named the socket (argument or variable) rather than leaving it to discovery."""
        return self.socket_source is not None and self.socket_source != "service"


class _Steps:
    """Fills a ``Diagnosis`` step by step; the first failure becomes the fallback reason."""

    def __init__(self, url: str, configured: str | None, source: str | None) -> None:
        self.report: dict[str, Any] = {"url": url, "url_reachable": False, "socket_path": configured,
                                       "socket_source": source}  # fmt: skip

    def failed(self, reason: str) -> None:
        self.report.setdefault("fallback_reason", reason)

    def http(self, health: dict[str, Any] | None, info: dict[str, Any] | None, error: str | None) -> None:
        if error is not None:
            self.report["url_error"] = error
            if self.report["socket_path"] is None:
                self.failed(f"no socket known: {error}; pass --socket or set {SOCKET_VARIABLE}")
            return
        self.report["url_reachable"] = True
        self.report["service_ready"] = bool((health or {}).get("ready"))
        if self.report["socket_path"] is None:
            found = socket_from_info(info or {})
            if found is None:
                self.failed(f"the service at {self.report['url']} offers no shared-memory sessions")
            else:
                self.report.update(socket_path=found, socket_source="service")

    def reachable(self, error: str | None) -> bool:
        self.report["socket_reachable"] = error is None
        if error is not None:
            self.failed(f"socket {self.report['socket_path']}: {error}")
        return error is None

    def handshake(self, welcome: Welcome | None, error: ShmBridgeError | None) -> bool:
        if welcome is not None:
            engine = welcome.engine.get("name") if isinstance(welcome.engine, dict) else None
            self.report.update(peer_accepted=True, handshake=True, protocol_version=welcome.version, engine=engine)
            return True
        assert error is not None
        if isinstance(error, PeerRejected):
            self.report["peer_accepted"] = False
        self.report["handshake"] = False
        self.failed(error.message)
        return False

    def round_trip(self, seconds: float | None, error: ShmBridgeError | None) -> None:
        self.report["round_trip"] = error is None
        if error is None and seconds is not None:
            self.report["round_trip_ms"] = seconds * 1e3
        elif error is not None:
            self.failed(f"test frame: {error.message}")

    def done(self) -> Diagnosis:
        return Diagnosis(**self.report)


def _probe(path: str, timeout: float) -> str | None:
    """Whether a plain connection to the socket succeeds (the error text if not)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(path)
    except OSError as exc:
        return exc.strerror or str(exc) or "no answer"
    finally:
        probe.close()
    return None


def _test_frame() -> np.ndarray:
    return np.full(TEST_FRAME, 255, np.uint8)


def diagnose(client: Client) -> Diagnosis:
    steps = _Steps(client.url, _str(client.configured_socket), client.socket_source)
    try:
        health, info = client.health(), client.info()
        steps.http(health, info, None)
    except ShmBridgeError as exc:
        steps.http(None, None, exc.message)
    path = steps.report["socket_path"]
    timeout = client.timeouts.connect
    if path is None or not steps.reachable(_probe(path, timeout)):
        return steps.done()
    session = SessionClient(path, timeout=timeout)
    try:
        session.connect()
    except ShmBridgeError as exc:
        steps.handshake(None, exc)
        return steps.done()
    try:
        steps.handshake(session.welcome, None)
        started = time.perf_counter()
        try:
            session.ocr_copy(_test_frame(), timeout=client.timeouts.request)
            steps.round_trip(time.perf_counter() - started, None)
        except ShmBridgeError as exc:
            steps.round_trip(None, exc)
    finally:
        session.close()
    return steps.done()


async def diagnose_async(client: AsyncClient) -> Diagnosis:
    steps = _Steps(client.url, _str(client.configured_socket), client.socket_source)
    try:
        health, info = await client.health(), await client.info()
        steps.http(health, info, None)
    except ShmBridgeError as exc:
        steps.http(None, None, exc.message)
    path = steps.report["socket_path"]
    timeout = client.timeouts.connect
    if path is None or not steps.reachable(await asyncio.to_thread(_probe, path, timeout)):
        return steps.done()
    session = AsyncSessionClient(path, timeout=timeout)
    try:
        await session.connect()
    except ShmBridgeError as exc:
        steps.handshake(None, exc)
        return steps.done()
    try:
        steps.handshake(session.welcome, None)
        started = time.perf_counter()
        try:
            await session.ocr_copy(_test_frame(), timeout=client.timeouts.request)
            steps.round_trip(time.perf_counter() - started, None)
        except ShmBridgeError as exc:
            steps.round_trip(None, exc)
    finally:
        await session.close()
    return steps.done()


def _str(path: object) -> str | None:
    return None if path is None else str(path)
