"""The shared-memory transport: one OCR call over an open session (``AsyncSessionTransport``).

``shm.py`` is generated from ``shm_async.py`` by ``scripts/unasync.py`` (its ``SessionTransport`` serves the
blocking client), so the two cannot drift: edit ``shm_async.py`` only. ``handle(call)`` is the same small
interface the HTTP transport has. A frame from ``frame()`` is submitted by reference (zero copies); anything
else gets a slot and is copied or decoded into it once. A failure HTTP can serve comes out as
``base.SessionFailure`` (the client then falls back); any other error is the caller's answer and
propagates as it is. This module must never decide about fallback or reconnects, nor copy a frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import numpy as np

from ..errors import SessionClosed, ShmBridgeError
from ..models import PixelFormat
from .base import ClientResult, OcrCall, SessionFailure, session_failure, session_result
from .inputs import Encoded, FrameRef, Pixels, write_into
from .session_async import AsyncSessionClient
from .slots import SessionState, SlotLease


def _stale() -> SessionFailure:
    return SessionFailure(SessionClosed("the frame belongs to a session that has ended"), broken=False)


def _nbytes(image: Pixels | Encoded) -> int:
    height, width, channels = image.shape
    return height * width * channels


def _copy_in(lease: SlotLease, image: Pixels | Encoded, state: SessionState) -> tuple[np.ndarray, PixelFormat]:
    """The one copy into the lent slot, in the engine's channel order; returns the frame and that order."""
    out = lease.frame(*image.shape)
    return out, write_into(image, out, state.engine_format(image.pixel_format))


def _reraise(exc: ShmBridgeError, waiting_for_slot: bool = False) -> NoReturn:
    """An error HTTP can serve as ``SessionFailure``; the caller's answers unchanged. (A plain ``except``
    around each wait, not a context manager: nothing is built per call.)"""
    failure = session_failure(exc, waiting_for_slot=waiting_for_slot)
    if failure is None:
        raise exc
    raise failure from exc


class AsyncSessionTransport:
    """OCR over a session client (``AsyncSessionClient``): calls share its socket and slot pool."""

    def __init__(self, session: AsyncSessionClient) -> None:
        self.session = session

    @classmethod
    async def connect(cls, path: Path, timeout: float) -> AsyncSessionTransport:
        """A session opened on ``path`` (handshake done), ready for calls."""
        return cls(await AsyncSessionClient(path, timeout=timeout).connect())

    @property
    def connected(self) -> bool:
        return self.session.connected

    async def handle(self, call: OcrCall) -> ClientResult:
        """OCR ``call`` over the session: a frame by reference, anything else copied into a slot once. The
        reply is validated once, into the client's result (``total_time_ms`` is the shell's to set)."""
        image = call.image
        session = self.session
        opts = call.options
        if isinstance(image, FrameRef):
            if not session.owns(image.lease):
                raise _stale()
            try:
                return await session.submit(  # type: ignore[return-value]  # parse makes a ClientResult
                    image.lease,
                    image.array,
                    pixel_format=image.pixel_format,
                    options=opts,
                    timeout=call.timeout,
                    parse=session_result,
                )
            except ShmBridgeError as exc:
                _reraise(exc)
        lease = await self._acquire(_nbytes(image), call.timeout)
        try:
            out, written = _copy_in(lease, image, session.state)
            try:
                return await session.submit(  # type: ignore[return-value]
                    lease, out, pixel_format=written, options=opts, timeout=call.timeout, parse=session_result
                )
            except ShmBridgeError as exc:
                _reraise(exc)
        finally:
            if not lease.released:
                session.release(lease)

    async def lease_frame(self, height: int, width: int, channels: int, timeout: float) -> SlotLease:
        """A slot lent to the caller for one frame, its ``array`` ready to write.

        ``RequestTimeout`` when every slot stays lent until ``timeout``; ``SessionFailure`` when HTTP must do.
        """
        lease = await self._acquire(height * width * channels, timeout)
        lease.frame(height, width, channels)
        return lease

    async def _acquire(self, nbytes: int, timeout: float) -> SlotLease:
        """A slot for ``nbytes``. Where slots of that size exist, ``acquire`` only waits for one, and running
        out of time is the caller's answer (HTTP shares the service's admission), not a fallback."""
        waiting_for_slot = self.session.has_slot_class(nbytes)
        try:
            return await self.session.acquire(nbytes, timeout)
        except ShmBridgeError as exc:
            _reraise(exc, waiting_for_slot)

    def release(self, lease: SlotLease) -> None:
        if not lease.released:
            self.session.release(lease)

    async def close(self) -> None:
        await self.session.close()
