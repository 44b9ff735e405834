"""Client-side bookkeeping for a session, without I/O: request ids, segments, slot leases and replies.

``SessionState`` is shared by the blocking and the asyncio session clients, which differ only in how
they wait. It owns the client's ``wire.Connection`` (every frame out is encoded by it and every frame in
decoded by it, so the state table holds for the client too), the segments the service granted (mapped
read-write), and their slots' ``wire.SlotLedger`` (fds that arrive with SEGMENT frames are matched here).

Who owns a slot, at any moment, is exactly one ``wire.Owner``: the free list, a caller (a ``SlotLease``),
or the service (from submit to reply). A slot whose request timed out stays with the service until its
late reply arrives, so the client never writes into pixels the service may still be reading. This
module must never touch a socket, take a lock or wait (the session clients do).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import wire as p
from ..errors import ProtocolError, UsageError
from ..memory import Segment
from ..models import DEFAULT_OPTIONS, OcrOptions, OcrResult, PixelFormat
from ..wire import Owner, error_of, request_options, slots_per_segment

#: Results are small, but a page of dense text with boxes can reach a few hundred KiB.
MAX_REPLY_BODY = 64 * 1024 * 1024
_NO_OPTIONS = (None, p.NO_OPTIONS)
#: How a RESULT's fields become the caller's result: one validation (the high-level client passes its own,
#: so that its ``ClientResult`` is validated once, straight from the reply).
ParseResult = Callable[[Mapping[str, Any]], OcrResult]
PARSE: ParseResult = OcrResult.model_validate


@dataclass(eq=False)
class SlotLease:
    """One slot lent to the caller. ``array`` is a writable view of the slot's first bytes.

    Write pixels into ``array`` (or into ``frame(...)``) and submit the lease: nothing is copied.
    """

    segment: Segment
    slot: int
    buffer: np.ndarray = field(repr=False)
    array: np.ndarray | None = field(default=None, repr=False)
    pixel_format: PixelFormat = PixelFormat.RGB
    owner: Owner = Owner.CALLER

    @property
    def capacity(self) -> int:
        return self.segment.slot_size

    @property
    def key(self) -> tuple[int, int]:
        return self.segment.id, self.slot

    @property
    def held(self) -> bool:
        """True while the caller owns the slot: it may write into it, submit it and must give it back."""
        return self.owner is Owner.CALLER

    @property
    def released(self) -> bool:
        """The caller does not hold the slot (any more): it is free, or the service's (``owner`` says which)."""
        return self.owner is not Owner.CALLER

    def frame(self, height: int, width: int, channels: int = 3) -> np.ndarray:
        """A writable H×W(×C) uint8 view at the start of the slot (contiguous rows)."""
        needed = height * width * channels
        if needed > self.capacity:
            raise UsageError(f"a {width}x{height}x{channels} frame needs {needed} bytes; the slot holds "
                             f"{self.capacity}")  # fmt: skip
        shape = (height, width) if channels == 1 else (height, width, channels)
        self.array = self.buffer[:needed].reshape(shape)
        return self.array


class SessionState:
    """Everything a session client knows, with no sockets: encode requests, decode replies, lend slots."""

    def __init__(self, client_name: str = "shmbridge-python") -> None:
        self._ids = itertools.count(1)
        self.client_name = client_name
        self.conn = p.Connection(p.Role.CLIENT, MAX_REPLY_BODY)
        self.fds: deque[int] = deque()
        self.segments: dict[int, Segment] = {}
        self.ledger = p.SlotLedger()
        self.welcome: p.Welcome | None = None
        self.slots_per_segment = p.DEFAULT_SLOTS_PER_SEGMENT
        self.closed = False

    # -- requests ------------------------------------------------------------------------------

    def engine_format(self, pixel_format: PixelFormat) -> PixelFormat:
        """The channel order to write pixels in when the client copies them anyway.

        If the engine does not take ``pixel_format`` natively but takes the same channels in another order
        (RapidOCR wants BGR, clients send RGB), writing that order during the one copy the client makes
        spares the service a conversion of the whole frame. Otherwise the format stays as it is.
        """
        native = (self.welcome.engine.get("native_formats") or []) if self.welcome else []
        if not native or pixel_format.value in native:
            return pixel_format
        for name in native:
            candidate = PixelFormat(name)
            if candidate.channels == pixel_format.channels and candidate is not PixelFormat.GRAY:
                return candidate
        return pixel_format

    def next_id(self) -> int:
        return next(self._ids)

    def hello(self) -> tuple[int, bytes]:
        rid = self.next_id()
        return rid, self.conn.send(p.Hello(rid, p.SUPPORTED_VERSIONS, self.client_name, os.getpid()))

    @staticmethod
    def welcomed(event: p.Event) -> None:
        """Check the answer to HELLO (``feed`` took the WELCOME's limits already); anything else is raised
        as its error."""
        if not isinstance(event, p.Welcome):
            raise error_of(event)

    def alloc(self, frame_bytes: int) -> tuple[int, bytes]:
        rid = self.next_id()
        return rid, self.conn.send(p.Alloc(rid, frame_bytes, self.slots_per_segment))

    def bye(self) -> bytes:
        """The client's BYE, or nothing when it has said its last word already."""
        return self.conn.send(p.Bye(0, "client closed")) if self.conn.may_send(p.Bye) else b""

    @staticmethod
    def granted(event: p.Event) -> None:
        """Check the answer to ALLOC (``feed`` attached its segment already); anything else is raised."""
        if not isinstance(event, p.SegmentGranted):
            raise error_of(event)

    def submission(
        self,
        lease: SlotLease,
        image: np.ndarray | None,
        pixel_format: PixelFormat | str | None,
        options: OcrOptions | None,
    ) -> tuple[int, bytes]:
        """The request for pixels already in ``lease`` (``image``, or the lease's frame by default)."""
        image = lease.array if image is None else image
        if image is None:
            raise UsageError("nothing to submit: call lease.frame(...) and write pixels first")
        return self.ocr_request(lease, image, format_of(image, pixel_format), options)

    def ocr_request(
        self,
        lease: SlotLease,
        image: np.ndarray,
        pixel_format: PixelFormat,
        options: OcrOptions | None,
    ) -> tuple[int, bytes]:
        """The OCR_REQUEST frame naming ``image``, which must lie inside ``lease``'s slot; from here until
        the reply (``result_of``) the slot is the service's."""
        offset = _offset_in(lease, image)
        height, width = image.shape[:2]
        channels = 1 if image.ndim == 2 else image.shape[2]
        if image.strides[-1] != 1 or (image.ndim == 3 and image.strides[1] != channels):
            raise UsageError("pixels within a row must be packed; only the row pitch may vary")
        # The defaults travel as no options at all, decided here without a call (once per request).
        roi, extra = _NO_OPTIONS if options is None or options is DEFAULT_OPTIONS else request_options(options)
        rid = self.next_id()
        request = p.OcrRequest(rid, lease.segment.id, lease.slot, offset, height, width, channels,
                               pixel_format.value, image.strides[0], roi, extra)  # fmt: skip
        data = self.conn.send_request(request)
        self.ledger.submitted(lease)
        return rid, data

    # -- replies -----------------------------------------------------------------------------

    def feed(self, data: bytes, fds: list[int]) -> list[p.Event]:
        """Decode whatever whole frames ``data`` completes. SEGMENT events are attached right here, and the
        WELCOME's limits read."""
        self.fds.extend(fds)
        conn = self.conn
        conn.receive_data(data)
        events: list[p.Event] = []
        while (event := conn.next_event()) is not None:
            kind = type(event)
            if kind is not p.Result:
                if kind is p.SegmentGranted:
                    if not self.fds:
                        raise ProtocolError("SEGMENT frame arrived without its file descriptor")
                    self._attach(event, self.fds.popleft())  # type: ignore[arg-type]
                elif kind is p.Welcome:
                    self.welcome = event  # type: ignore[assignment]
                    self.slots_per_segment = slots_per_segment(event.limits)  # type: ignore[union-attr]
            events.append(event)
        return events

    def _attach(self, event: p.SegmentGranted, fd: int) -> None:
        segment = Segment.attach(event.segment, fd, event.slot_size, event.slot_count)
        self.segments[segment.id] = segment
        self.ledger.add_segment(segment.id, segment.slot_size, segment.slot_count)

    def result_of(self, event: p.Event, lease: SlotLease | None = None, parse: ParseResult = PARSE) -> OcrResult:
        """The typed result of a reply (its fields through ``parse``), or raise the typed error it carries;
        ``lease``, whose request it answers, is the caller's again."""
        if lease is not None:
            self.ledger.replied(lease)
        if isinstance(event, p.Result):
            return parse(event.result)
        raise error_of(event)

    # -- slots -------------------------------------------------------------------------------

    def try_lease(self, nbytes: int) -> SlotLease | None:
        """A free slot of the smallest class that fits ``nbytes`` (the most recently given back: it is
        still in the caches), or ``None``."""
        taken = self.ledger.take(nbytes)
        if taken is None:
            return None
        segment_id, slot = taken
        segment = self.segments[segment_id]
        return SlotLease(segment, slot, segment.slot_buffer(slot))

    def has_class_for(self, nbytes: int) -> bool:
        return self.ledger.has_class_for(nbytes)

    def abandon(self, rid: int, lease: SlotLease, replied: bool = False) -> None:
        """Request ``rid`` timed out: unless its reply came meanwhile (``replied``), the slot stays the
        service's until the late reply (``reclaim``)."""
        self.ledger.abandon(rid, lease, replied)

    def reclaim(self, rid: int) -> SlotLease | None:
        """The slot of an abandoned request whose late reply came, the caller's again to give back; ``None``
        when ``rid`` was not abandoned (its reply is awaited)."""
        return self.ledger.reclaim(rid)  # type: ignore[return-value]  # the ledger holds what it was given

    def give_back(self, lease: SlotLease) -> None:
        self.ledger.give_back(lease)
        lease.array = None

    def close(self) -> None:
        """Unmap every segment and close stray fds. Leases still held by callers become unusable."""
        self.closed = True
        while self.fds:
            os.close(self.fds.popleft())
        for segment in self.segments.values():
            try:
                segment.close()
            except BufferError:
                # A caller still holds a view: drop our reference; the mapping goes with the last view.
                segment.fd, fd = -1, segment.fd
                if fd >= 0:
                    os.close(fd)
        self.segments.clear()
        self.ledger.clear()


def format_of(image: np.ndarray, pixel_format: PixelFormat | str | None) -> PixelFormat:
    """The pixel format given, or the RGB-family default for the array's channel count."""
    if pixel_format is not None:
        return pixel_format if type(pixel_format) is PixelFormat else PixelFormat(pixel_format)
    return PixelFormat.default_for(1 if image.ndim == 2 else image.shape[2])


def copy_into(lease: SlotLease, image: np.ndarray, pixel_format: PixelFormat, target: PixelFormat) -> np.ndarray:
    """Copy ``image`` (any strides) into the start of the lease's slot once, in ``target`` channel order;
    returns the frame written."""
    frame = lease.frame(image.shape[0], image.shape[1], pixel_format.channels)
    copy_reordered(image, frame, pixel_format, target)
    return frame


def copy_reordered(source: np.ndarray, out: np.ndarray, source_format: PixelFormat, target: PixelFormat) -> None:
    """One pass from ``source`` into ``out``, reordering channels from ``source_format`` to ``target``
    (same channel count). No temporary array: RGB<->BGR is a reversed view, four channels go one by one."""
    if target is source_format:
        np.copyto(out, source.reshape(out.shape), casting="no")
        return
    src = source.reshape(out.shape)
    if source_format.channels == 3 and source_format.value[::-1] == target.value:
        np.copyto(out, src[:, :, ::-1], casting="no")
        return
    for index, channel in enumerate(target.value):
        out[:, :, index] = src[:, :, source_format.value.index(channel)]


def _offset_in(lease: SlotLease, image: np.ndarray) -> int:
    """Byte offset of ``image`` inside the lease's slot; ``UsageError`` if it lies elsewhere."""
    if image is lease.array:
        return 0  # the frame handed out by SlotLease.frame() starts the slot
    base = lease.buffer.__array_interface__["data"][0]
    start = image.__array_interface__["data"][0]
    offset = start - base
    if offset < 0 or offset >= lease.capacity:
        raise UsageError("the image does not live in this slot; copy it in with ocr_copy() or frame()")
    return offset
