"""Shared memory for the data plane: sealed anonymous segments, slots, numpy views and byte limits.

The service creates every segment and passes its file descriptor to the client over the Unix socket, so
nothing is ever named in ``/dev/shm``: when both processes are gone the kernel frees the pages, and no
other process can guess a name and open it. ``multiprocessing.shared_memory`` is deliberately not used
(its resource tracker unlinks segments it does not own).

Byte layout of one segment (``slot_size`` is a page-aligned size class)::

    offset 0          slot_size        2*slot_size              count*slot_size
    ├─ slot 0 ────────┼─ slot 1 ───────┼─ ... ─────────────────┤
    │ pixels at       │                │                        │
    │ offset + y*pitch│                │                        │

Rules this module keeps:

- On Linux a segment is a ``memfd`` sealed with ``F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`` after its
  pages are allocated, so a client can never shrink it under the service (no SIGBUS) or reseal it. On
  macOS it is ``shm_open`` followed at once by ``shm_unlink`` (no seals exist there; its size is fixed once
  set).
- The service maps segments read-only; the client maps them read-write. The page tables are filled once,
  at creation, not on the first frame, by ``madvise(MADV_POPULATE_READ/WRITE)`` called through ``ctypes``,
  which lets go of the GIL: ``mmap.mmap(..., MAP_POPULATE)`` faults the pages in while holding it, which
  froze every other session for as long (ARCHITECTURE.md, decision 32).
- A mapped segment costs the service one fd: CPython's ``mmap`` keeps a duplicate of the fd it maps, so
  the service drops its own (``drop_fd``) once the client has it. The client keeps the one it received,
  for a screen capture to hand on to the X server.
- ``close`` and ``detach`` are separate: ``Segment.close`` unmaps and closes the fd; the kernel frees the
  pages when the last process lets go. Class-level defaults let ``close`` run on half-built objects.
- Limits are checked before any memory is created; breaking one raises ``MemoryLimitExceeded`` or
  ``SessionLimitExceeded``.

Slot size classes and the bounds rule are the protocol's (``wire.slots``); they are importable from here too.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import threading
from typing import Protocol

import numpy as np

from .environment import limit_hint
from .errors import ErrorCode, InvalidRequest, MemoryLimitExceeded, SegmentLimitExceeded, SessionLimitExceeded
from .wire.slots import MAX_SLOTS_PER_SEGMENT, PAGE, check_image_bounds, size_class

__all__ = [
    "MAX_SLOTS_PER_SEGMENT", "PAGE", "DescriptorCounter", "MemoryBudget", "Segment", "SessionMemory",
    "check_image_bounds", "seals_of", "size_class",
]  # fmt: skip

_IS_LINUX = sys.platform.startswith("linux")

if _IS_LINUX:
    import fcntl

    _SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
    # Linux >= 5.14; older kernels answer EINVAL and the pages are faulted in on first use instead.
    _MADV_POPULATE_READ = 22
    _MADV_POPULATE_WRITE = 23
    # A ctypes call into libc releases the GIL for its duration (unlike ``mmap.madvise``).
    _libc = ctypes.CDLL(None, use_errno=True)
    _madvise = _libc.madvise
    _madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    _madvise.restype = ctypes.c_int


def _create_fd(name: str, size: int) -> int:
    """A new anonymous shared-memory fd of ``size`` bytes with its pages allocated (and sealed on Linux)."""
    if _IS_LINUX:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)  # allocate now: no page allocation (or ENOSPC) on a frame
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        except BaseException:
            os.close(fd)
            raise
        return fd
    import _posixshmem  # CPython's own binding, the one shared_memory uses; no tracker involved

    shm_name = f"/shmb-{os.getpid()}-{int.from_bytes(os.urandom(6), 'big'):x}"[:31]
    fd = _posixshmem.shm_open(shm_name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    _posixshmem.shm_unlink(shm_name)  # nameless from here on, exactly like a memfd
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _map(fd: int, size: int, writable: bool) -> mmap.mmap:
    flags = mmap.MAP_SHARED
    if not _IS_LINUX:  # no MADV_POPULATE_* there: pre-fault the page tables while mapping
        flags |= getattr(mmap, "MAP_POPULATE", 0)
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
    return mmap.mmap(fd, size, flags=flags, prot=prot)


def _populate(address: int, size: int, writable: bool) -> None:
    """Fill the page tables of a fresh mapping without holding the GIL (Linux); best effort."""
    if _IS_LINUX and size:
        _madvise(address, size, _MADV_POPULATE_WRITE if writable else _MADV_POPULATE_READ)


def seals_of(fd: int) -> int:
    """The seals on ``fd`` (Linux), for tests and diagnostics; 0 elsewhere."""
    return fcntl.fcntl(fd, fcntl.F_GET_SEALS) if _IS_LINUX else 0


class Segment:
    """One shared-memory segment split into ``slot_count`` slots of ``slot_size`` bytes."""

    # Defaults let close() run on an object whose __init__ failed half way.
    fd: int = -1
    _mmap: mmap.mmap | None = None

    def __init__(self, segment_id: int, fd: int, slot_size: int, slot_count: int, *, writable: bool) -> None:
        if slot_size <= 0 or slot_size % PAGE or slot_count <= 0:
            raise InvalidRequest(f"bad segment geometry: {slot_count} slots of {slot_size} bytes")
        self.id = segment_id
        self.slot_size = slot_size
        self.slot_count = slot_count
        self.writable = writable
        self.nbytes = slot_size * slot_count
        actual = os.fstat(fd).st_size
        if actual < self.nbytes:
            raise InvalidRequest(f"segment fd holds {actual} bytes, {self.nbytes} expected")
        self.fd = fd
        self._mmap = _map(fd, self.nbytes, writable)
        self._buffer = np.frombuffer(self._mmap, dtype=np.uint8)
        _populate(self._buffer.ctypes.data, self.nbytes, writable)
        if not writable:
            self._buffer.flags.writeable = False

    def drop_fd(self) -> None:
        """Close this side's fd and keep only the mapping (whose own duplicate the ``mmap`` object holds):
        one fd per segment. The service calls it once the fd has been passed to the client."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @classmethod
    def create(cls, segment_id: int, slot_size: int, slot_count: int) -> Segment:
        """Service side: a new sealed, pre-faulted segment, mapped read-only."""
        fd = _create_fd(f"shmbridge-{segment_id}", slot_size * slot_count)
        try:
            return cls(segment_id, fd, slot_size, slot_count, writable=False)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def attach(cls, segment_id: int, fd: int, slot_size: int, slot_count: int) -> Segment:
        """Client side: map a segment received over the socket, read-write. Takes ownership of ``fd``, and
        keeps it: a screen capture hands it on to the X server (``capture/``), and a client's descriptors
        count against its own limit, not the service's."""
        try:
            return cls(segment_id, fd, slot_size, slot_count, writable=True)
        except BaseException:
            os.close(fd)
            raise

    def slot_buffer(self, slot: int) -> np.ndarray:
        """The whole slot as a flat uint8 array (writable only on the client side)."""
        start = slot * self.slot_size
        return self._buffer[start : start + self.slot_size]

    def image_view(self, slot: int, offset: int, height: int, width: int, channels: int, pitch: int) -> np.ndarray:
        """A (read-only on the service) H×W(×C) view of pixels in ``slot``; validates every bound first."""
        check_image_bounds(self.slot_count, self.slot_size, slot, offset, height, width, channels, pitch)
        start = slot * self.slot_size + offset
        shape: tuple[int, ...] = (height, width) if channels == 1 else (height, width, channels)
        strides: tuple[int, ...] = (pitch, 1) if channels == 1 else (pitch, channels, 1)
        return np.ndarray(shape, dtype=np.uint8, buffer=self._buffer, offset=start, strides=strides)

    def close(self) -> None:
        """Unmap and close the fd. Every numpy view must be gone first (``BufferError`` otherwise)."""
        if self._mmap is not None:
            self._buffer = None  # type: ignore[assignment]
            self._mmap.close()
            self._mmap = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def closed(self) -> bool:
        return self._mmap is None


# -- limits --------------------------------------------------------------------------------------


class MemoryBudget:
    """Service-wide limits: total bytes mapped for sessions and the number of sessions. Thread-safe."""

    def __init__(self, total_bytes: int, max_sessions: int) -> None:
        self.total_bytes = total_bytes
        self.max_sessions = max_sessions
        self.used_bytes = 0
        self.sessions = 0
        self._lock = threading.Lock()
        self._session_left = threading.Condition(self._lock)

    def open_session(self, wait: float = 0.0) -> None:
        """Count one more session, waiting up to ``wait`` seconds for a place when all are taken.

        The wait covers a client that ends its session and reconnects at once: its old session's thread
        may not have read the BYE yet when the new HELLO arrives."""
        with self._lock:
            if not self._session_left.wait_for(lambda: self.sessions < self.max_sessions, wait):
                raise SessionLimitExceeded(
                    f"the service already holds {self.sessions} sessions, its limit ({limit_hint('max_sessions')})"
                )
            self.sessions += 1

    def close_session(self) -> None:
        with self._lock:
            self.sessions -= 1
            self._session_left.notify()

    def reserve(self, nbytes: int) -> None:
        with self._lock:
            if self.used_bytes + nbytes > self.total_bytes:
                raise MemoryLimitExceeded(
                    f"{nbytes} more bytes would exceed the service's total of {self.total_bytes} "
                    f"({self.used_bytes} in use; {limit_hint('total_bytes')})"
                )
            self.used_bytes += nbytes

    def release(self, nbytes: int) -> None:
        with self._lock:
            self.used_bytes -= nbytes


class DescriptorCounter(Protocol):
    """What a session's memory needs of the service's fd budget (``service.fd_budget.FdBudget``)."""

    def take(self, what: str, count: int = 1) -> None: ...

    def give(self, count: int = 1) -> None: ...


class _Unbudgeted:
    """No fd budget (unit tests, the client side): every descriptor is granted."""

    def take(self, what: str, count: int = 1) -> None:
        pass

    def give(self, count: int = 1) -> None:
        pass


class SessionMemory:
    """Service side: the segments of one session, which slots are lent, and the session's byte, segment
    and descriptor limits (each segment holds one fd of the service's budget until it is closed).

    Its session thread allocates and lends; slots come back from that thread or from the loop (blocking
    engines). Each of those steps is one atomic set or dict operation under the GIL, and readers on other
    threads (metrics) take a snapshot, so no lock is needed.
    """

    def __init__(
        self,
        budget: MemoryBudget,
        session_bytes: int,
        max_frame_bytes: int,
        max_segments: int = 64,
        fds: DescriptorCounter | None = None,
    ) -> None:
        self.budget = budget
        self.session_bytes = session_bytes
        self.max_frame_bytes = max_frame_bytes
        self.max_segments = max_segments
        self.fds: DescriptorCounter = fds or _Unbudgeted()
        self.segments: dict[int, Segment] = {}
        self._lent: dict[int, set[int]] = {}
        self.used_bytes = 0
        self._next_id = 1

    def allocate(self, frame_bytes: int, slot_count: int) -> Segment:
        """A new segment of ``slot_count`` slots big enough for ``frame_bytes`` each."""
        if frame_bytes <= 0:
            raise InvalidRequest(f"a segment for {frame_bytes}-byte frames makes no sense",
                                 code=ErrorCode.BAD_DIMENSIONS)  # fmt: skip
        if frame_bytes > self.max_frame_bytes:
            raise MemoryLimitExceeded(
                f"a {frame_bytes}-byte frame exceeds the {self.max_frame_bytes}-byte frame limit "
                f"({limit_hint('max_frame_bytes')})"
            )
        if (
            isinstance(slot_count, bool)
            or not isinstance(slot_count, int)
            or not 1 <= slot_count <= MAX_SLOTS_PER_SEGMENT
        ):
            raise InvalidRequest(f"a segment holds 1 to {MAX_SLOTS_PER_SEGMENT} slots, not {slot_count!r}",
                                 code=ErrorCode.BAD_DIMENSIONS)  # fmt: skip
        slot_size = size_class(frame_bytes)
        nbytes = slot_size * slot_count
        if self.used_bytes + nbytes > self.session_bytes:
            # Fewer slots is better than none: shrink the count before refusing.
            slot_count = (self.session_bytes - self.used_bytes) // slot_size
            if slot_count < 1:
                raise MemoryLimitExceeded(
                    f"a {slot_size}-byte slot would exceed this session's limit of {self.session_bytes} "
                    f"bytes ({self.used_bytes} in use; {limit_hint('session_bytes')})"
                )
            nbytes = slot_size * slot_count
        if len(self.segments) >= self.max_segments:
            raise SegmentLimitExceeded(
                f"this session already holds {len(self.segments)} segments (the limit); reuse their slots"
            )
        self.fds.take("segment")
        try:
            self.budget.reserve(nbytes)
        except BaseException:
            self.fds.give()
            raise
        try:
            segment = Segment.create(self._next_id, slot_size, slot_count)
        except OSError as exc:  # EMFILE, ENOMEM, ENOSPC: the machine's limits, told as ours
            self.budget.release(nbytes)
            self.fds.give()
            raise MemoryLimitExceeded(f"the service could not create a {nbytes}-byte segment: {exc.strerror}") from None
        except BaseException:
            self.budget.release(nbytes)
            self.fds.give()
            raise
        self.segments[segment.id] = segment
        self._lent[segment.id] = set()
        self._next_id += 1
        self.used_bytes += nbytes
        return segment

    def segment(self, segment_id: int) -> Segment:
        try:
            return self.segments[segment_id]
        except KeyError:
            raise InvalidRequest(f"segment {segment_id} does not exist", code=ErrorCode.BAD_SLOT) from None

    def lend(self, segment_id: int, slot: int) -> None:
        segment = self.segment(segment_id)
        if not 0 <= slot < segment.slot_count:
            raise InvalidRequest(f"slot {slot} does not exist in segment {segment_id}", code=ErrorCode.BAD_SLOT)
        lent = self._lent[segment_id]
        if slot in lent:
            raise InvalidRequest(f"slot {slot} of segment {segment_id} is already lent",
                                 code=ErrorCode.SLOT_IN_USE)  # fmt: skip
        lent.add(slot)

    def give_back(self, segment_id: int, slot: int) -> None:
        lent = self._lent.get(segment_id)
        if lent is not None:
            lent.discard(slot)

    @property
    def slots_in_use(self) -> int:
        return sum(len(lent) for lent in list(self._lent.values()))  # the session thread may add a segment

    def close(self) -> None:
        """Unmap every segment and return the bytes to the budget. Call only when no view is alive."""
        for segment in self.segments.values():
            segment.close()
        self.fds.give(len(self.segments))
        self.budget.release(self.used_bytes)
        self.used_bytes = 0
        self.segments.clear()
        self._lent.clear()
