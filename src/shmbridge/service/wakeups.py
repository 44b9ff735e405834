"""Low-latency mode: keep idle CPUs polling, not halting, while sessions are exchanging requests.

Most of a session round trip on a virtual machine is waking idle vCPUs (ARCHITECTURE.md, decision 10):
a vCPU with nothing to run halts, which exits to the hypervisor, and the next request or reply has to
wake it through the host. Linux lets a process ask for a bound on that wake-up latency with a PM QoS
request: while a file descriptor of ``/dev/cpu_dma_latency`` holding the value 0 is open, the cpuidle
governors (``haltpoll``, ``menu``, ``teo``) pick the polling idle state, so a vCPU spins in the guest
kernel and sees new work without a VM exit. Closing the descriptor withdraws the request at once, also
when the process dies. The same mechanism is what ``cyclictest`` and tuned's latency profiles use.

The price is CPU: every idle CPU of the machine spins while the request is held. So this module holds it
only while sessions are busy, as the kernel's own halt polling would: the first request of a burst
engages it (that request still pays the wake-up), each later one extends it, and ``hold`` seconds after
the last one a small thread withdraws it. Off by default (``--low-latency`` turns it on). It needs write
access to ``/dev/cpu_dma_latency`` (root, or a udev rule giving the service's group that device); without
it the service logs once and carries on as before. Nothing here is on the request path beyond one clock
read and one attribute test per request.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("shmbridge.wakeups")

#: The kernel's PM QoS interface for the whole machine's CPU wake-up latency, in microseconds (int32).
CPU_DMA_LATENCY = Path("/dev/cpu_dma_latency")


class CpuWakeupHold:
    """A PM QoS request of ``latency_us`` held from a ``touch`` until ``hold`` seconds after the last one.

    ``touch`` is called from any thread (each session's thread, for every frame it reads); one daemon
    thread withdraws the request once sessions go quiet. ``close`` withdraws it for good.
    """

    def __init__(self, hold: float, *, path: Path = CPU_DMA_LATENCY, latency_us: int = 0) -> None:
        if hold <= 0:
            raise ValueError(f"a hold of {hold}s makes no sense")
        self.hold = hold
        self.path = path
        self.latency_us = latency_us
        self.engagements = 0  # how many bursts engaged the request (for /api/v1/bridge/info)
        self.unavailable: str | None = None  # why the request cannot be made here; None while it can
        self._fd: int | None = None  # open while the request is held (guarded by _lock)
        self._last = 0.0  # monotonic time of the latest touch; a plain float store, no lock
        self._closed = False
        self._lock = threading.Lock()
        self._engaged = threading.Event()  # set while held: wakes the withdrawing thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._withdraw_when_quiet, name="cpu-wakeup-hold", daemon=True)

    def start(self) -> CpuWakeupHold:
        """Check once that the request can be made, so a missing permission shows at startup, not later."""
        if not sys.platform.startswith("linux"):
            self.unavailable = "PM QoS requests exist on Linux only"
        else:
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CLOEXEC))
            except OSError as exc:
                self.unavailable = f"cannot open {self.path} for writing: {exc.strerror or exc}"
        if self.unavailable:
            log.warning("low-latency mode is off: %s", self.unavailable)
            return self
        self._thread.start()
        log.info("low-latency mode: idle CPUs poll while sessions are busy and for %.3fs after", self.hold)
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def touch(self) -> None:
        """A request arrived: hold (or keep holding) the wake-up latency request."""
        self._last = time.monotonic()
        if self._fd is None and self.unavailable is None and self._thread.is_alive():
            self._engage()

    def _engage(self) -> None:
        with self._lock:
            if self._fd is not None or self._closed:
                return
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as exc:
                self.unavailable = f"cannot open {self.path} for writing: {exc.strerror or exc}"
                log.warning("low-latency mode is off from now on: %s", self.unavailable)
                return
            try:
                os.write(fd, struct.pack("=i", self.latency_us))
            except OSError as exc:
                os.close(fd)
                self.unavailable = f"the kernel refused the request: {exc.strerror or exc}"
                log.warning("low-latency mode is off from now on: %s", self.unavailable)
                return
            self._fd = fd
            self.engagements += 1
            self._engaged.set()

    def _withdraw(self) -> None:
        """Close the descriptor (the kernel drops the request with it). Called with ``_lock`` held."""
        fd, self._fd = self._fd, None
        self._engaged.clear()
        if fd is not None:
            os.close(fd)

    def _withdraw_when_quiet(self) -> None:
        """The daemon thread: sleep while nothing is held; once held, withdraw ``hold`` after the last touch."""
        while not self._stop.is_set():
            self._engaged.wait()
            while not self._stop.is_set():
                quiet_for = time.monotonic() - self._last
                if quiet_for >= self.hold:
                    break
                self._stop.wait(self.hold - quiet_for)
            with self._lock:
                # A touch between the check above and this lock only finds the request still held; the
                # next one engages it again, so at worst one request pays a wake-up.
                self._withdraw()

    def close(self) -> None:
        """Withdraw the request for good; later touches do nothing."""
        with self._lock:
            self._closed = True
            self._withdraw()
        self._stop.set()
        self._engaged.set()  # let the thread see the stop
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "available": self.unavailable is None,
            "reason": self.unavailable,
            "held": self.held,
            "hold_s": self.hold,
            "engagements": self.engagements,
        }
