"""Named shared-memory regions registered over HTTP, for clients that cannot pass file descriptors.

A client (Node.js, a shell script) creates a file in the configured ``region_dir`` (tmpfs such as
``/dev/shm/<dir>`` is best), writes pixels into it, and registers ``{name, offset, byte_size}``; OCR requests
then name the region and an offset inside it, like Triton's system shared-memory extension. This module
owns the registry: opening, checking, reading, reference counting and closing. It knows nothing of HTTP
(the routes live in ``shmem``).

Rules it keeps:

- a name matches ``NAME_PATTERN`` (no ``/``, no ``..``, no leading dot) and is opened with
  ``os.open(name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, dir_fd=<region dir>)``: only a regular
  file directly inside the directory, never a symlink, a FIFO (O_NONBLOCK: opening one cannot hang the
  loop) or a device;
- ``offset`` and ``byte_size`` are each below 2**48 and ``offset + byte_size`` must lie inside the file as
  ``fstat`` reports it; limits (regions per client, regions and bytes over all clients, the service's fd
  budget: one fd per region) are checked before the file is opened;
- a region file is never mapped: ``view`` reads the request's pixels with ``pread`` into a buffer the
  service owns (one copy, counted in ``bytes_copied``). A client may truncate its own file at any moment,
  and a mapping read past the new end raises SIGBUS and kills the service; a read only comes back short,
  which is a typed error (ARCHITECTURE.md, decision 28). Clients that want zero copy use session mode,
  whose memfd segments are sealed against shrinking;
- unregistering while a request uses the region takes the name away at once but closes the fd only when
  the last request has released it (reference count).

Lock order: ``RegionRegistry._lock`` is a leaf lock; nothing else is taken while it is held.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...environment import limit_hint
from ...errors import AccessDenied, AlreadyExists, ErrorCode, InvalidRequest, MemoryLimitExceeded, NotFound
from ...memory import DescriptorCounter, check_image_bounds

if TYPE_CHECKING:
    from ...config import ServiceConfig
    from ..fd_budget import Descriptors

log = logging.getLogger("shmbridge.regions")

#: Region names: a file name, nothing else. The first character is alphanumeric so ``.`` and ``..`` and
#: hidden files are out; ``/`` is not in the alphabet so nothing can leave the directory.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Largest offset or size accepted; anything above is refused before arithmetic.
MAX_FIELD = 1 << 48
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(eq=False)
class Region:
    """One registered file, open read-only. ``users`` counts requests that are using it."""

    name: str
    client: str
    offset: int
    byte_size: int
    file_size: int
    fd: int
    registered_at: float = field(default_factory=time.time)
    users: int = 0
    closing: bool = False

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "client": self.client,
            "offset": self.offset,
            "byte_size": self.byte_size,
            "file_size": self.file_size,
            "in_use": self.users,
            "state": "closing" if self.closing else "active",
            "registered_at": self.registered_at,
        }


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain file name from the allowed alphabet; raise ``InvalidRequest``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise InvalidRequest(
            f"region name {name!r} is not allowed: 1-64 characters from A-Z a-z 0-9 . _ -, starting with a letter "
            "or digit, without '..'"
        )
    return name


def _check_field(label: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_FIELD:
        raise InvalidRequest(f"{label} {value!r} is out of range (0 <= {label} < 2**48)", code=ErrorCode.OUT_OF_BOUNDS)


class RegionRegistry:
    """Every region registered over HTTP, with per-client and total byte limits. Thread-safe.

    ``release`` may be called from any thread (the core calls it when an engine thread lets go of the
    pixels); everything else is called from the event loop.
    """

    def __init__(
        self,
        directory: Path | None,
        max_per_client: int,
        max_total_bytes: int,
        max_regions: int = 256,
        fds: DescriptorCounter | None = None,
    ) -> None:
        self.directory = directory
        self.max_per_client = max_per_client
        self.max_total_bytes = max_total_bytes
        self.max_regions = max_regions
        self.fds = fds
        self._regions: dict[str, Region] = {}
        self._closing: set[Region] = set()
        self._mapped_bytes = 0
        self._lock = threading.Lock()
        self._dir_fd = -1
        if directory is not None:
            directory.mkdir(mode=0o770, parents=True, exist_ok=True)
            self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            permissions = stat.S_IMODE(os.fstat(self._dir_fd).st_mode)
            if permissions & 0o002:
                log.warning("region directory %s is world-writable (mode %o): anyone can plant files", directory,
                            permissions)  # fmt: skip

    @classmethod
    def for_service(cls, config: ServiceConfig, fds: Descriptors | None = None) -> RegionRegistry:
        """The service's registry: directory and limits from ``config``, one fd per region from the memory
        share of ``fds``. Its owner closes it (``Server``, once the engines have stopped)."""
        share = fds.memory if fds is not None else None
        return cls(config.region_dir, config.max_regions_per_client, config.max_region_bytes, config.max_regions, share)

    @property
    def enabled(self) -> bool:
        return self._dir_fd >= 0

    def require_enabled(self) -> None:
        if not self.enabled:
            raise NotFound("HTTP shared-memory regions are disabled: start the service with --region-dir")

    # -- registration ------------------------------------------------------------------------------

    def register(self, name: str, client: str, offset: int = 0, byte_size: int | None = None) -> Region:
        """Open, check and map ``name`` read-only; ``byte_size`` ``None`` means up to the end of the file."""
        self.require_enabled()
        check_name(name)
        _check_field("offset", offset)
        if byte_size is not None:
            _check_field("byte_size", byte_size)
            if byte_size == 0:
                raise InvalidRequest("byte_size must be positive", code=ErrorCode.BAD_DIMENSIONS)
        with self._lock:  # cheap checks first: no file is opened for a request that cannot succeed
            self._check_admission(name, client, byte_size or 0)
        if self.fds is not None:
            self.fds.take("region")
        try:
            fd = self._open(name)
        except BaseException:
            self._give_fd()
            raise
        try:
            file_size = os.fstat(fd).st_size
            size = file_size - offset if byte_size is None else byte_size
            if offset >= file_size or offset + size > file_size:
                wanted = "the rest of the file" if byte_size is None else f"byte_size {byte_size}"
                raise InvalidRequest(
                    f"region {name!r}: offset {offset} + {wanted} does not fit in its {file_size}-byte file",
                    code=ErrorCode.OUT_OF_BOUNDS,
                )
            with self._lock:
                self._check_admission(name, client, size)
                region = Region(name, client, offset, size, file_size, fd)
                self._regions[name] = region
                self._mapped_bytes += size
        except BaseException:
            os.close(fd)
            self._give_fd()
            raise
        log.info("region %s registered by %s: %d bytes at offset %d", name, client, size, offset)
        return region

    def _check_admission(self, name: str, client: str, size: int) -> None:
        """Caller holds ``_lock``."""
        if name in self._regions:
            raise AlreadyExists(f"region {name!r} is already registered; unregister it first")
        # The global count does not depend on the client's name (a header it chooses), so changing the
        # name on each request cannot get around it.
        if len(self._regions) + len(self._closing) >= self.max_regions:
            raise MemoryLimitExceeded(f"the service already holds {self.max_regions} regions (the limit)")
        held = sum(1 for region in self._regions.values() if region.client == client)
        if held >= self.max_per_client:
            raise MemoryLimitExceeded(
                f"client {client} already holds {held} regions, the limit ({limit_hint('max_regions_per_client')})"
            )
        if self._mapped_bytes + size > self.max_total_bytes:
            raise MemoryLimitExceeded(
                f"{size} more region bytes would exceed the limit of {self.max_total_bytes} "
                f"({self._mapped_bytes} mapped; {limit_hint('max_region_bytes')})"
            )

    def _open(self, name: str) -> int:
        try:
            fd = os.open(name, _OPEN_FLAGS, dir_fd=self._dir_fd)
        except FileNotFoundError:
            raise NotFound(f"no file {name!r} in the region directory") from None
        except PermissionError:
            raise AccessDenied(f"the service may not read {name!r}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidRequest(f"{name!r} is a symbolic link; regions must be regular files") from None
            raise InvalidRequest(f"cannot open region {name!r}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InvalidRequest(f"{name!r} is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def unregister(self, name: str) -> dict[str, Any]:
        """Forget ``name`` now; unmap now, or when the last request using it releases it."""
        self.require_enabled()
        with self._lock:
            region = self._regions.pop(name, None)
            if region is None:
                raise NotFound(f"no region named {name!r} is registered")
            region.closing = True
            deferred = region.users > 0
            if deferred:
                self._closing.add(region)
            else:
                self._close_region(region)
        log.info("region %s unregistered%s", name, " (unmapped when its requests finish)" if deferred else "")
        return {"name": name, "unregistered": True, "deferred": deferred, "in_use": region.users}

    # -- use by requests ---------------------------------------------------------------------------

    def acquire(self, name: str) -> Region:
        """Take a reference on a registered region; pair with exactly one ``release``."""
        self.require_enabled()
        with self._lock:
            region = self._regions.get(name)
            if region is None:
                raise NotFound(f"no region named {name!r} is registered")
            region.users += 1
            return region

    def release(self, region: Region) -> None:
        """Drop a reference; unmaps a region that was unregistered meanwhile once nobody uses it."""
        with self._lock:
            region.users -= 1
            if region.closing and region.users <= 0:
                self._closing.discard(region)
                self._close_region(region)

    def view(
        self, region: Region, offset: int, height: int, width: int, channels: int, pitch: int | None = None
    ) -> np.ndarray:
        """A read-only H×W(×C) uint8 copy of the region's pixels at ``offset`` (relative to the region).

        Read with ``pread`` into a buffer of the service's own, never through a mapping: a file its client
        truncated meanwhile gives a short read and a typed error, where a mapping would give SIGBUS.
        ``pread`` lets go of the GIL; callers run large reads in a worker thread."""
        row_pitch = width * channels if pitch is None else pitch
        check_image_bounds(1, region.byte_size, 0, offset, height, width, channels, row_pitch)
        if region.fd < 0:
            raise NotFound(f"region {region.name!r} is closed")
        current = os.fstat(region.fd).st_size  # a file shorter than registered was changed under us
        if current < region.offset + region.byte_size:
            raise InvalidRequest(
                f"region {region.name!r}: its file shrank to {current} bytes; re-register it",
                code=ErrorCode.OUT_OF_BOUNDS,
            )
        span = (height - 1) * row_pitch + width * channels
        buffer = np.empty(height * row_pitch, dtype=np.uint8)  # whole rows, so the strides below fit
        try:
            got = os.preadv(region.fd, [memoryview(buffer)[:span]], region.offset + offset)
        except OSError as exc:
            raise InvalidRequest(f"cannot read region {region.name!r}: {exc.strerror}") from None
        if got < span:
            raise InvalidRequest(
                f"region {region.name!r}: its file shrank to {region.offset + offset + got} bytes while it was "
                f"read ({region.offset + offset + span} needed); re-register it",
                code=ErrorCode.OUT_OF_BOUNDS,
            )
        shape: tuple[int, ...] = (height, width) if channels == 1 else (height, width, channels)
        strides: tuple[int, ...] = (row_pitch, 1) if channels == 1 else (row_pitch, channels, 1)
        view = np.ndarray(shape, dtype=np.uint8, buffer=buffer, strides=strides)
        view.flags.writeable = False
        return view

    # -- reporting and shutdown ----------------------------------------------------------------------

    def list_regions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [region.info() for region in self._regions.values()]

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "directory": str(self.directory) if self.directory is not None else None,
                "count": len(self._regions),
                "closing": len(self._closing),
                "bytes_mapped": self._mapped_bytes,
                "in_use": sum(region.users for region in (*self._regions.values(), *self._closing)),
            }

    def __len__(self) -> int:
        return len(self._regions)

    def close(self) -> None:
        """Close every region (service shutdown, after the engines have drained)."""
        with self._lock:
            for region in (*self._regions.values(), *self._closing):
                self._close_region(region)
            self._regions.clear()
            self._closing.clear()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def _close_region(self, region: Region) -> None:
        """Caller holds ``_lock``: close the region's fd and drop it from the accounting (once)."""
        if region.fd >= 0:
            os.close(region.fd)
            region.fd = -1
            self._mapped_bytes -= region.byte_size
            self._give_fd()

    def _give_fd(self) -> None:
        if self.fds is not None:
            self.fds.give()
