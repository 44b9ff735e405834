"""The service's file-descriptor budget: the soft ``RLIMIT_NOFILE`` raised once, and what peers may hold.

Every descriptor a peer can make the service hold is taken from an ``FdBudget`` before it is created: a
session's socket (from accept to its end) from ``Descriptors.connections``; a shared-memory segment (one
fd each, ``memory.Segment``) and a registered region (one fd each) from ``Descriptors.memory``. What is
left of the process limit after the descriptors open at start and a reserve (log files, the engine's own
files, a socket accepted only to be refused) is split between the two: connections get room for every
session and pending connection the config allows (at most half), memory the rest; HTTP connections
(``http_connections``) get half of the reserve. When a
budget is spent a peer gets a typed ``DescriptorLimitExceeded`` instead of the process running into
``EMFILE``; since peers that hoard segments or regions cannot spend the connections' share, new sessions
still open, and ``/health`` keeps working.

It must never create or close a descriptor itself: it only counts.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass

from ..errors import DescriptorLimitExceeded

log = logging.getLogger("shmbridge.fds")

#: Descriptors kept out of the budget for everything that is not a peer's: the engine's files and
#: threads, logging, HTTP connections, and a connection accepted only to be told it is refused.
RESERVE_FRACTION = 0.25
MIN_RESERVE = 64


def raise_nofile_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (once, at start); return the soft limit now."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not a POSIX system
        return 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY or (sys.platform == "darwin" and target > 10240):
        target = 1 << 20 if sys.platform != "darwin" else 10240  # macOS refuses more than OPEN_MAX
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft


def open_fd_count() -> int:
    """How many descriptors the process has open now (``/proc/self/fd`` or ``/dev/fd``)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory)) - 1  # the listing's own descriptor
        except OSError:
            continue
    return 0


class FdBudget:
    """How many descriptors peers may still make the service hold. Thread-safe; a leaf lock."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.used = 0
        self._lock = threading.Lock()

    def take(self, what: str, count: int = 1) -> None:
        """Count ``count`` more descriptors for ``what``, or raise ``DescriptorLimitExceeded``."""
        with self._lock:
            if self.used + count > self.limit:
                raise DescriptorLimitExceeded(
                    f"no file descriptor is left for another {what}: peers hold {self.used} of the "
                    f"{self.limit} the service can spare; end idle sessions, segments or regions, or raise "
                    "LimitNOFILE"
                )
            self.used += count

    def give(self, count: int = 1) -> None:
        with self._lock:
            self.used -= count

    @property
    def free(self) -> int:
        return self.limit - self.used

    def status(self) -> dict[str, int]:
        return {"limit": self.limit, "used": self.used}


@dataclass(frozen=True, slots=True)
class Descriptors:
    """The two budgets peers draw from: sockets of sessions (pending ones included), and segments and
    regions."""

    connections: FdBudget
    memory: FdBudget
    #: HTTP connections: half of the reserve (the other half: the engine, logging, refusals).
    http: FdBudget

    @classmethod
    def for_process(cls, soft_limit: int, open_now: int, connections: int) -> Descriptors:
        """Split what a soft limit of ``soft_limit`` leaves, with ``open_now`` descriptors already open;
        ``connections`` is how many sockets the config allows at once (sessions and pending ones)."""
        reserve = max(MIN_RESERVE, int(soft_limit * RESERVE_FRACTION))
        spare = max(0, soft_limit - open_now - reserve)
        for_connections = min(connections, spare // 2)
        return cls(FdBudget(for_connections), FdBudget(spare - for_connections), FdBudget(reserve // 2))

    @classmethod
    def measured(cls, connections: int) -> Descriptors:
        """The split for this process now, after raising its soft limit to the hard one."""
        return cls.for_process(raise_nofile_limit(), open_fd_count(), connections)

    def status(self) -> dict[str, dict[str, int]]:
        return {"connections": self.connections.status(), "memory": self.memory.status(), "http": self.http.status()}
