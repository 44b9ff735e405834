"""How long a waiting client polls its socket before it sleeps: an adaptive window, no I/O here.

A blocked reader costs two wake-ups per round trip, and on a virtual machine each can be a VM exit. On
this project's 2-vCPU KVM machine the guest's own idle polling is off (``guest_halt_poll_ns`` = 0), so
every idle vCPU halts at once: a 1080p in-place round trip measured 185-203 µs p50 with the reader
blocking, 127-150 µs when it polled first (up to 200 µs, the same minutes), and 48-59 µs with the
kernel's halt polling turned on instead, for comparison (ARCHITECTURE.md, decision 10).

Polling pays only when the reply comes soon, so the window follows the rule of the kernel's haltpoll
governor: a reply that came within the limit grows the window (doubling, from ``GROW_START``), one that
came later shrinks it (halving, to 0 below ``GROW_START``). A client of a slow engine (OCR taking
100 ms) stops polling after a few requests; a client of a fast one polls at most ``limit`` per request.
"""

from __future__ import annotations

#: Default polling limit per wait, in seconds: the kernel's own default for ``guest_halt_poll_ns``. With
#: 100 µs the window closed itself here, since a round trip of 150 µs counts as a miss.
DEFAULT_SPIN = 200e-6
GROW_START = 10e-6


class SpinWindow:
    """The current polling window (seconds) and how it adapts to the waits it sees."""

    __slots__ = ("limit", "window")

    def __init__(self, limit: float = DEFAULT_SPIN) -> None:
        if limit < 0:
            raise ValueError(f"a polling limit of {limit}s makes no sense")
        self.limit = limit
        self.window = limit

    def record(self, waited: float) -> None:
        """A reply arrived ``waited`` seconds after the wait began (polling included)."""
        if not self.limit:
            return
        if waited <= self.limit:
            self.window = min(self.limit, max(self.window * 2, GROW_START))
        else:
            self.window /= 2
            if self.window < GROW_START:
                self.window = 0.0
