"""The low-latency hold (``--low-latency``): keep idle CPUs polling, not halting, while sessions are busy.

Most of a session round trip on a virtual machine is waking idle vCPUs (ARCHITECTURE.md, decision 10):
a vCPU with nothing to run halts, which exits to the hypervisor, and the next request or reply has to
wake it through the host. Linux lets a process ask for a bound on that wake-up latency with a PM QoS
request: while a file descriptor of ``/dev/cpu_dma_latency`` holding the value 0 is open, the cpuidle
governors (``haltpoll``, ``menu``, ``teo``) pick the polling idle state, so a CPU spins in the kernel and
sees new work without a VM exit. The request is made by one process and applies to the whole machine;
closing the descriptor withdraws it at once, also when the process dies. ``cyclictest`` and tuned's
latency profiles use the same interface. It only does something where a cpuidle driver with a polling
state 0 is loaded (``haltpoll``, ``intel_idle``, ``acpi_idle`` on x86); ``start`` checks that in sysfs.

The price is CPU: every idle CPU of the machine spins while the request is held. So this module holds it
only while sessions are busy, as the kernel's own halt polling would: the first request of a burst
engages it (that request still pays the wake-up), each later one extends it, and ``hold`` seconds after
the last one a small thread withdraws it. Off by default (``--low-latency`` turns it on). It needs write
access to ``/dev/cpu_dma_latency`` (root, or a udev rule giving the service's group that device); without
it the service logs once and carries on as before. Nothing here is on the request path beyond one clock
read and one attribute test per request.
"""

from __future__ import annotations

import errno
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
#: Where the cpuidle driver and cpu0's idle states are described.
CPU_SYSFS = Path("/sys/devices/system/cpu")

#: Errors of ``open`` that will not go away by themselves (permission, no such device); anything else
#: (EMFILE under load, ENOMEM) is retried by a later touch after ``_RETRY_AFTER`` seconds.
_PERMANENT = frozenset({errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EROFS})
_RETRY_AFTER = 1.0


def polling_state_missing(sysfs: Path = CPU_SYSFS) -> str | None:
    """Why a latency request of 0 would not make idle CPUs poll here, or ``None`` if it would.

    The request is read by the cpuidle governor, which then picks state 0; that only helps if a cpuidle
    driver is loaded and its state 0 is the polling loop (``POLL``). Without a driver the kernel halts
    idle CPUs whatever the request says; on arm64 state 0 is WFI, a halt too."""
    try:
        driver = (sysfs / "cpuidle" / "current_driver").read_text().strip()
    except OSError:
        return "no cpuidle driver is loaded (no cpuidle/current_driver in sysfs)"
    if not driver or driver == "none":
        return "no cpuidle driver is loaded, so idle CPUs halt whatever the request says"
    try:
        state0 = (sysfs / "cpu0" / "cpuidle" / "state0" / "name").read_text().strip()
    except OSError:
        return f"the cpuidle driver {driver} lists no idle states"
    if state0 != "POLL":
        return f"the cpuidle driver {driver} has no polling state (its state 0 is {state0})"
    return None


def hold_status(hold_s: float, reason: str | None, held: bool = False, engagements: int = 0) -> dict[str, Any]:
    """The ``low_latency`` status of a service that asked for the hold (``/api/v1/bridge/info``)."""
    return {
        "enabled": True,
        "available": reason is None,
        "reason": reason,
        "held": held,
        "hold_s": hold_s,
        "engagements": engagements,
    }


#: The ``low_latency`` status of a service that did not ask for the hold.
OFF_STATUS: dict[str, Any] = {"enabled": False}


class CpuWakeupHold:
    """A PM QoS request of ``latency_us`` held from a ``touch`` until ``hold`` seconds after the last one.

    ``touch`` is called from any thread (each session's thread, for every frame it reads); one daemon
    thread withdraws the request once sessions go quiet. ``close`` withdraws it for good.
    """

    def __init__(
        self, hold: float, *, path: Path = CPU_DMA_LATENCY, sysfs: Path = CPU_SYSFS, latency_us: int = 0
    ) -> None:
        if hold <= 0:
            raise ValueError(f"a hold of {hold}s makes no sense")
        self.hold = hold
        self.path = path
        self.sysfs = sysfs
        self.latency_us = latency_us
        self.engagements = 0  # how many bursts engaged the request (for /api/v1/bridge/info)
        self.unavailable: str | None = "not started"  # why the request cannot be made; None while it can
        self._fd: int | None = None  # open while the request is held (guarded by _lock)
        self._last = 0.0  # monotonic time of the latest touch; a plain float store, no lock
        self._retry_at = 0.0  # after a transient open failure, no new attempt before this time
        self._closed = False
        self._lock = threading.Lock()  # guards _fd and engagements; nothing else is taken under it
        self._engaged = threading.Event()  # set while held: wakes the withdrawing thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._withdraw_when_quiet, name="cpu-wakeup-hold", daemon=True)

    def start(self) -> CpuWakeupHold:
        """Check once that the request can be made and would do something, so a missing permission or
        a machine without a polling idle state shows at startup, not later. Starts the withdrawing
        thread. Calling it again, or after ``close``, does nothing."""
        if self._thread.ident is not None or self._closed:
            return self
        reason = None
        if not sys.platform.startswith("linux"):
            reason = "PM QoS requests exist on Linux only"
        else:
            reason = polling_state_missing(self.sysfs)
            if reason is None:
                try:
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CLOEXEC))
                except OSError as exc:
                    reason = f"cannot open {self.path} for writing: {exc.strerror or exc}"
        self.unavailable = reason
        if reason:
            log.warning("low-latency mode is off: %s", reason)
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
        if self._fd is None and self.unavailable is None and self._last >= self._retry_at:
            self._engage()

    def _engage(self) -> None:
        problem = None
        with self._lock:
            if self._fd is not None or self._closed or self.unavailable is not None:
                return
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as exc:
                problem = f"cannot open {self.path} for writing: {exc.strerror or exc}"
                if exc.errno in _PERMANENT:
                    self.unavailable = problem
                else:
                    self._retry_at = time.monotonic() + _RETRY_AFTER
            else:
                try:
                    os.write(fd, struct.pack("=i", self.latency_us))
                except OSError as exc:  # the device opened but refused the value: it will refuse it again
                    os.close(fd)
                    problem = self.unavailable = f"the kernel refused the request: {exc.strerror or exc}"
                else:
                    self._fd = fd
                    self.engagements += 1
                    self._engaged.set()
        if problem is not None:  # logged outside the lock: a slow log handler must not stall other sessions
            if self.unavailable is not None:
                log.warning("low-latency mode is off from now on: %s", problem)
            else:
                log.warning("low-latency mode could not engage (trying again in %.0fs): %s", _RETRY_AFTER, problem)

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
                    with self._lock:
                        # A touch may have come since the check above: look again under the lock. One
                        # that lands after this point finds the request gone and engages it anew.
                        if self._stop.is_set() or time.monotonic() - self._last >= self.hold:
                            self._withdraw()
                            break
                    continue
                self._stop.wait(self.hold - quiet_for)

    def close(self) -> None:
        """Withdraw the request for good; later touches do nothing. Safe to call twice, or before ``start``."""
        with self._lock:
            self._closed = True
            self._withdraw()
        self._stop.set()
        self._engaged.set()  # let the thread see the stop
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def status(self) -> dict[str, Any]:
        return hold_status(self.hold, self.unavailable, self.held, self.engagements)
