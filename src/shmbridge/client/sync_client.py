"""``Client``: the blocking client, ``shell.ClientShell`` plus how it waits for a session.

Every call is written once, in ``shell_async.py``, and generated into ``shell.py`` for this client.
What this module owns is what really differs: ``ocr_batch`` (one image after another) and how a session
is (re)opened. ``Client`` is safe to share between threads and starts no thread: a lost session is
reopened lazily. The first call after the backoff clock (``RetryPolicy``: exponential, jittered) falls due
tries to reconnect, while calls in other threads keep going over HTTP instead of waiting for it. That is
the simplest design that is correct here: nothing runs after ``close()``, nothing needs joining, and an
idle client costs nothing. In ``mode="shm"`` a call with no session tries to connect at once and raises
the typed error if it cannot.

Lock order: ``_connect_lock`` (one connecting thread) before ``_lock`` (lifecycle and the session
reference); neither is held during an OCR call. This module must never hold a call's logic (it belongs in
``shell_async.py``, so that both clients have it) nor start a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from ..errors import ServiceUnavailable
from .base import ClientResult, SessionFailure, TransportPolicy
from .shell import ClientShell
from .shm import SessionTransport


class Client(ClientShell):
    """Blocking OCR client: shared memory when it can, HTTP when it must. Thread-safe.

    ::

        with shmbridge.Client() as client:
            result = client.ocr("screenshot.png")               # decoded into shared memory once
            with client.frame(1080, 1920) as frame:              # zero-copy: render straight into a slot
                render(frame)
                result = client.ocr(frame)
    """

    def _make_transports(self) -> None:
        super()._make_transports()
        self._connect_lock = threading.Lock()

    def ocr_batch(self, images: Iterable[Any], **options: Any) -> list[ClientResult]:
        """OCR several images, one after another. For concurrency share the client between threads, or use
        ``AsyncClient``."""
        return [self.ocr(image, **options) for image in images]

    # -- the session -----------------------------------------------------------------------------------

    def _session_or_none(self) -> SessionTransport | None:
        """The open session, or a fresh one if a reconnect is due, or ``None`` (use HTTP)."""
        session = self._session
        if session is not None and session.connected:
            return session
        if self.transport_policy is TransportPolicy.HTTP:
            return None
        if session is not None:
            self._lost(session, SessionFailure(ServiceUnavailable("the session ended"), broken=True))
        if self._discovered_none:
            return None
        if self.transport_policy is TransportPolicy.SHM:
            self._connect_lock.acquire()  # shm mode waits for a connecting thread; auto mode uses HTTP meanwhile
        elif not self._connect_lock.acquire(blocking=False):
            return None
        try:
            current = self._session
            if current is not None and current.connected:
                return current
            if self.transport_policy is TransportPolicy.AUTO and not self._clock.due():
                return None
            return self._connect()
        finally:
            self._connect_lock.release()

    def _open_session(self) -> None:
        self._session_or_none()

    def _reconnect_later(self) -> None:
        """Nothing to start: the first call after the backoff clock falls due reconnects."""

    def _stop_reconnecting(self) -> None:
        """Nothing runs in the background."""
