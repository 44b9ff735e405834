"""The shared-memory transport, blocking and asyncio: one OCR call over an open session.

``handle(call)`` is the same small interface the HTTP transport has. A frame from ``frame()`` is submitted by
reference (zero copies); anything else gets a slot and is copied or decoded into it once. A failure HTTP
can serve comes out as ``base.SessionFailure`` (the client then falls back); any other error is the
caller's answer and propagates as it is. These classes never decide about fallback or reconnects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from ..errors import SessionClosed, ShmBridgeError
from ..models import OcrResult, PixelFormat
from .async_session import AsyncSessionClient
from .base import OcrCall, SessionFailure, session_failure
from .inputs import Encoded, FrameRef, Pixels, write_into
from .session import SessionClient
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


@contextlib.contextmanager
def _classified(*, waiting_for_slot: bool = False) -> Iterator[None]:
    """Turn an error HTTP can serve into ``SessionFailure``; let the caller's answers through unchanged."""
    try:
        yield
    except ShmBridgeError as exc:
        failure = session_failure(exc, waiting_for_slot=waiting_for_slot)
        if failure is None:
            raise
        raise failure from exc


class SessionTransport:
    """OCR over a blocking ``SessionClient``; thread-safe like it."""

    def __init__(self, session: SessionClient) -> None:
        self.session = session

    @property
    def connected(self) -> bool:
        return self.session.connected

    def handle(self, call: OcrCall) -> OcrResult:
        image = call.image
        session = self.session
        opts = call.options
        if isinstance(image, FrameRef):
            if not session.owns(image.lease):
                raise _stale()
            with _classified():
                return session.submit(image.lease, image.array, pixel_format=image.pixel_format, options=opts,
                                      timeout=call.timeout)  # fmt: skip
        nbytes = _nbytes(image)
        with _classified(waiting_for_slot=session.has_slot_class(nbytes)):  # then acquire() only waits
            lease = session.acquire(nbytes, call.timeout)
        try:
            out, written = _copy_in(lease, image, session.state)
            with _classified():
                return session.submit(lease, out, pixel_format=written, options=opts, timeout=call.timeout)
        finally:
            if not lease.released:
                session.release(lease)

    def lease_frame(self, height: int, width: int, channels: int, timeout: float) -> SlotLease:
        """A slot lent to the caller for one frame, its ``array`` ready to write.

        ``RequestTimeout`` when every slot stays lent until ``timeout``; ``SessionFailure`` when HTTP must do.
        """
        nbytes = height * width * channels
        with _classified(waiting_for_slot=self.session.has_slot_class(nbytes)):
            lease = self.session.acquire(nbytes, timeout)
        lease.frame(height, width, channels)
        return lease

    def release(self, lease: SlotLease) -> None:
        if not lease.released:
            self.session.release(lease)

    def close(self) -> None:
        self.session.close()


class AsyncSessionTransport:
    """OCR over an ``AsyncSessionClient``: any number of calls pipelined on one socket and its slot pool."""

    def __init__(self, session: AsyncSessionClient) -> None:
        self.session = session

    @property
    def connected(self) -> bool:
        return self.session.connected

    async def handle(self, call: OcrCall) -> OcrResult:
        image = call.image
        session = self.session
        opts = call.options
        if isinstance(image, FrameRef):
            if not session.owns(image.lease):
                raise _stale()
            with _classified():
                return await session.submit(image.lease, image.array, pixel_format=image.pixel_format,
                                            options=opts, timeout=call.timeout)  # fmt: skip
        nbytes = _nbytes(image)
        with _classified(waiting_for_slot=session.has_slot_class(nbytes)):  # then acquire() only waits
            lease = await session.acquire(nbytes, call.timeout)
        try:
            out, written = _copy_in(lease, image, session.state)
            with _classified():
                return await session.submit(lease, out, pixel_format=written, options=opts,
                                            timeout=call.timeout)  # fmt: skip
        finally:
            if not lease.released:
                session.release(lease)

    async def lease_frame(self, height: int, width: int, channels: int, timeout: float) -> SlotLease:
        nbytes = height * width * channels
        with _classified(waiting_for_slot=self.session.has_slot_class(nbytes)):
            lease = await self.session.acquire(nbytes, timeout)
        lease.frame(height, width, channels)
        return lease

    def release(self, lease: SlotLease) -> None:
        if not lease.released:
            self.session.release(lease)

    async def close(self) -> None:
        await self.session.close()
