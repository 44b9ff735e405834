"""Undo what a root test left on the host under one directory: its mounts and the processes running from it.

Owns finding and ending leftovers *under one path the caller created* (a private dockerd's tree, a debootstrap
target). It must never touch a mount or a process that does not name that path, and it never matches
processes by a broad name: only by the path in their command line, so another run's daemon is safe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def _decode_mountinfo_path(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first (the order to unmount them in)."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _decode_mountinfo_path(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def unmount_all_under(root: Path) -> list[str]:
    """Lazily unmount everything below ``root``; returns what was still mounted (should be nothing)."""
    for _ in range(3):  # a lazy unmount can uncover a mount that was stacked under it
        points = mounts_under(root)
        if not points:
            return []
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)
    return mounts_under(root)


def pids_naming(root: Path) -> list[int]:
    """Processes whose command line or working directory lies under ``root`` (this process excluded)."""
    prefix = str(root.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if prefix + "/" in argv or cwd == prefix or cwd.startswith(prefix + "/"):
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie only waits for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def kill_processes_naming(root: Path, grace: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process under ``root``; returns the pids that were found."""
    pids = pids_naming(root)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_running(pid) for pid in pids):
            time.sleep(0.1)
    return pids
