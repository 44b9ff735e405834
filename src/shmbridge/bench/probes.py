"""What the coordinator reads from the service around each slice: its CPU time and its copy counter.

CPU: ``/proc/<pid>/stat`` utime + stime is the kernel's figure for the whole process, but in clock ticks
(10 ms), too coarse for a 0.1 s slice of 20 µs requests. Where the scheduler's debug file exists, the
per-thread ``se.sum_exec_runtime`` (``/proc/<pid>/task/*/sched``, nanosecond resolution) is summed
instead; it is the same quantity before rounding. Both are kept for the whole run, so the report can
show that they agree. Threads that end between two reads would take their time with them; the
service's threads (event loop, engine pool, decode executor) live as long as the service.

Copies: ``GET /metrics`` and the ``shmbridge_bytes_copied_total`` counter per mode. Read after each
slice, never inside one, so the read's own cost is outside the timed and the CPU-accounted window.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_COPIED = re.compile(r'^shmbridge_bytes_copied_total\{mode="([^"]+)"\}\s+(\S+)$', re.MULTILINE)
_SUM_EXEC = re.compile(r"^se\.sum_exec_runtime\s*:\s*([0-9.]+)", re.MULTILINE)


def stat_cpu_s(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (clock-tick resolution), ``None`` if unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def sched_cpu_s(pid: int) -> float | None:
    """Sum of every live thread's ``se.sum_exec_runtime`` in seconds, ``None`` if not available."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0.0
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/sched").read_text()
        except OSError:
            continue  # the thread ended between listdir and open
        match = _SUM_EXEC.search(text)
        if match is None:
            return None
        total += float(match.group(1)) / 1e3  # milliseconds
    return total


class ProcessCpu:
    """CPU seconds of one process, from the finest source this kernel offers."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.source = "none"
        if pid is not None:
            if sched_cpu_s(pid) is not None:
                self.source = "sched"
            elif stat_cpu_s(pid) is not None:
                self.source = "stat"
        self.stat_start = stat_cpu_s(pid) if pid is not None else None
        self.fine_start = self.read()

    def read(self) -> float | None:
        if self.pid is None or self.source == "none":
            return None
        return sched_cpu_s(self.pid) if self.source == "sched" else stat_cpu_s(self.pid)

    def totals(self) -> dict[str, float | str | None]:
        """CPU seconds since this probe was made, by both sources (for the report's cross-check)."""
        stat_now = stat_cpu_s(self.pid) if self.pid is not None else None
        fine_now = self.read()
        return {
            "source": self.source,
            "stat_s": None if stat_now is None or self.stat_start is None else stat_now - self.stat_start,
            "fine_s": None if fine_now is None or self.fine_start is None else fine_now - self.fine_start,
        }


class CopyCounter:
    """``shmbridge_bytes_copied_total`` per mode, from ``/metrics``; ``None`` without an HTTP URL."""

    def __init__(self, url: str | None) -> None:
        self._client = httpx.Client(base_url=url, timeout=30, trust_env=False) if url else None

    def read(self) -> dict[str, float] | None:
        if self._client is None:
            return None
        try:
            response = self._client.get("/metrics")
        except httpx.TransportError:  # the keep-alive connection was dropped while a long slice ran
            response = self._client.get("/metrics")
        response.raise_for_status()
        return {mode: float(value) for mode, value in _COPIED.findall(response.text)}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
