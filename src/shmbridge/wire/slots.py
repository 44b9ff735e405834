"""Slots as the protocol knows them: size classes, the bounds rule, and the ledger of who owns each slot.

Owns the arithmetic both sides must agree on (``docs/protocol.md``, section 3: a slot's size class, how
many slots one ALLOC may ask for, and that an image lies wholly inside one slot) and the client's
ledger: each slot of a granted segment is owned by exactly one of the free list, a caller (a lease) or
the service (from the OCR_REQUEST that names it until its reply; a request the caller stopped waiting for
keeps its slot with the service until the late reply). It must never map memory, touch a socket or
hold pixels: ``memory`` maps the segments and ``client.slots`` lends their bytes.
"""

from __future__ import annotations

import enum
import mmap
from typing import Protocol

from ..errors import ErrorCode, InvalidRequest, UsageError

__all__ = ["MAX_SLOTS_PER_SEGMENT", "PAGE", "Lent", "Owner", "SlotLedger", "check_image_bounds", "size_class"]

PAGE = mmap.PAGESIZE
_MIN_CLASS = 64 * 1024
#: Largest number a wire field may carry; anything larger is rejected before arithmetic.
_MAX_FIELD = 1 << 48

#: ``ALLOC`` may ask for at most this many slots in one segment (0 asks for the service's default).
MAX_SLOTS_PER_SEGMENT = 256


def size_class(nbytes: int) -> int:
    """The slot size for a frame of ``nbytes``: powers of two and 1.5× powers of two, page aligned.

    Steps of at most 1.5× keep waste under a third: 1080p RGB (6.2 MB) gets 6 MiB, 4K RGB 24 MiB.
    """
    if nbytes <= _MIN_CLASS:
        return _MIN_CLASS
    size = _MIN_CLASS
    while True:
        if size >= nbytes:
            return size
        half_step = size + size // 2
        if half_step >= nbytes:
            return (half_step + PAGE - 1) // PAGE * PAGE
        size *= 2


def check_image_bounds(
    slot_count: int, slot_size: int, slot: int, offset: int, height: int, width: int, channels: int, pitch: int
) -> None:
    """Raise a typed ``InvalidRequest`` unless the image lies wholly inside one slot."""
    row = width * channels
    # The common case in one expression (every request takes this path); anything off falls through to
    # the checks below, which name what is wrong.
    if (
        0 <= slot < slot_count
        and 0 < height < _MAX_FIELD
        and 0 < width < _MAX_FIELD
        and 0 <= offset < _MAX_FIELD
        and row <= pitch < _MAX_FIELD
        and channels in (1, 3, 4)
        and offset + (height - 1) * pitch + row <= slot_size
    ):
        return
    for name, value in (("slot", slot), ("offset", offset), ("height", height), ("width", width),
                        ("pitch", pitch)):  # fmt: skip
        if not 0 <= value < _MAX_FIELD:
            raise InvalidRequest(f"{name} {value} is out of range", code=ErrorCode.OUT_OF_BOUNDS)
    if not 0 <= slot < slot_count:
        raise InvalidRequest(f"slot {slot} does not exist (0..{slot_count - 1})", code=ErrorCode.BAD_SLOT)
    if height <= 0 or width <= 0:
        raise InvalidRequest(f"dimensions {width}x{height} must be positive", code=ErrorCode.BAD_DIMENSIONS)
    if channels not in (1, 3, 4):
        raise InvalidRequest(f"{channels} channels; 1, 3 or 4 expected", code=ErrorCode.BAD_DIMENSIONS)
    if pitch < row:
        raise InvalidRequest(f"row pitch {pitch} is shorter than a row of {row} bytes",
                             code=ErrorCode.SHAPE_MISMATCH)  # fmt: skip
    end = offset + (height - 1) * pitch + row  # Python ints: no overflow; inputs bounded above
    if end > slot_size:
        raise InvalidRequest(f"image ends at byte {end} of a {slot_size}-byte slot", code=ErrorCode.OUT_OF_BOUNDS)


# -- who owns a slot -------------------------------------------------------------------------------


class Owner(enum.Enum):
    FREE = "free"  # on the free list: nobody may write it, anyone may lease it
    CALLER = "caller"  # lent to a caller, who writes pixels into it
    SERVICE = "service"  # named by a request in flight: the service may be reading it


class Lent(Protocol):
    """What the ledger needs of a lease: which slot it is, its size class and its owner."""

    owner: Owner

    @property
    def key(self) -> tuple[int, int]: ...  # (segment id, slot index)

    @property
    def capacity(self) -> int: ...


class SlotLedger:
    """The client's slots: a free list per size class, and the owner of every slot that is not free.

    Free slots are a stack (last in, first out): the slot given back most recently is still in the
    caches (a 1080p frame is 6.2 MB, and rotating through four slots touches four times that, as much as
    a server's L3 holds), so a caller that copies a frame in on every request writes warm pages. Not
    thread-safe: the blocking client holds its condition around every call."""

    def __init__(self) -> None:
        self.free: dict[int, list[tuple[int, int]]] = {}  # size class -> (segment id, slot) stack
        self.segments: set[int] = set()
        self._abandoned: dict[int, Lent] = {}  # request id -> the lease its caller stopped waiting for

    def add_segment(self, segment_id: int, slot_size: int, slot_count: int) -> None:
        """A granted segment's slots, all free; reversed, so that leases start at slot 0."""
        self.segments.add(segment_id)
        self.free.setdefault(slot_size, []).extend((segment_id, i) for i in reversed(range(slot_count)))

    def take(self, nbytes: int) -> tuple[int, int] | None:
        """A free slot of the smallest class that fits ``nbytes`` (now the caller's), or ``None``."""
        wanted = size_class(nbytes)
        for slot_size in sorted(self.free):
            if slot_size >= wanted and self.free[slot_size]:
                return self.free[slot_size].pop()
        return None

    def has_class_for(self, nbytes: int) -> bool:
        wanted = size_class(nbytes)
        return any(size >= wanted for size in self.free)

    def submitted(self, lease: Lent) -> None:
        """A request names ``lease``'s slot: the service's until the reply."""
        if lease.owner is not Owner.CALLER:
            raise UsageError(f"this slot lease is not yours to submit (it is {lease.owner.value})")
        lease.owner = Owner.SERVICE

    @staticmethod
    def replied(lease: Lent) -> None:
        """The reply to ``lease``'s request came: the slot is the caller's again."""
        lease.owner = Owner.CALLER

    def abandon(self, request_id: int, lease: Lent, replied: bool = False) -> None:
        """The caller stopped waiting for ``request_id``: unless its reply came meanwhile (``replied``), the
        slot stays the service's until the late reply, and then goes back to the free list."""
        if replied:
            lease.owner = Owner.CALLER
        else:
            self._abandoned[request_id] = lease

    def reclaim(self, request_id: int) -> Lent | None:
        """The lease of ``request_id`` if it was abandoned, the caller's again now its late reply came (the
        session gives it back); ``None`` when nobody abandoned it."""
        if not self._abandoned:
            return None
        lease = self._abandoned.pop(request_id, None)
        if lease is not None:
            lease.owner = Owner.CALLER
        return lease

    def give_back(self, lease: Lent) -> None:
        """The caller returns ``lease``: its slot is free (if its segment is still mapped)."""
        if lease.owner is Owner.FREE:
            raise UsageError("this slot lease was already returned")
        if lease.owner is Owner.SERVICE:
            raise UsageError("this slot lease is still the service's: its request is in flight")
        lease.owner = Owner.FREE
        segment_id, slot = lease.key
        if segment_id in self.segments:
            self.free[lease.capacity].append((segment_id, slot))

    def clear(self) -> None:
        """Every segment is gone: leases still held by callers can only be dropped."""
        self.free.clear()
        self.segments.clear()
        self._abandoned.clear()
