"""How long a waiting client polls its socket before it sleeps: an adaptive window, no I/O here.

A blocked reader costs two wake-ups per round trip, and on a virtual machine each can be a VM exit. Where
the guest's own idle polling is off (``guest_halt_poll_ns`` = 0), every idle vCPU halts at once, and
polling before sleeping takes a good part of the round trip away (ARCHITECTURE.md, decision 10; the
figures are in docs/benchmarks.md, "Figures behind the code's choices").

Polling pays only when the reply comes soon, so the window follows the rule of the kernel's haltpoll
governor: a reply that came within the limit grows the window (doubling, from ``GROW_START``), one that
came later shrinks it (halving, to 0 below ``GROW_START``). A client of a slow engine (OCR taking
a tenth of a second) stops polling after a few requests; a client of a fast one polls at most ``limit`` per request.
This module must never read the socket or sleep: ``SessionClient`` does, for as long as it says.
"""

from __future__ import annotations

#: Default polling limit per wait, in seconds: the kernel's own default for ``guest_halt_poll_ns``. Half
#: of it was too short: a blocking round trip is longer than that, so every reply counted as a miss and
#: the window closed itself.
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
