"""Unix-socket plumbing both sides share: peer credentials, passing fds, and the socket directory.

Platform differences are decided here once: ``SO_PEERCRED`` on Linux, ``getpeereid`` (via
``LOCAL_PEERCRED``) on macOS. Nothing here knows the protocol.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ServiceUnavailable

_IS_LINUX = sys.platform.startswith("linux")


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """Who is on the other end of a connected Unix socket, as the kernel says."""
    if _IS_LINUX:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        return PeerCredentials(pid, uid, gid)
    # macOS / BSD: struct xucred {u_int version; uid_t uid; short ngroups; gid_t groups[16];}
    local_peercred = getattr(socket, "LOCAL_PEERCRED", 0x001)
    raw = sock.getsockopt(0, local_peercred, struct.calcsize("IIh16I"))
    _version, uid, _ngroups, *groups = struct.unpack("IIh16I", raw)
    return PeerCredentials(-1, uid, groups[0] if groups else -1)


def prepare_socket_path(path: Path) -> None:
    """Create the socket's directory (mode 0770 or stricter) and remove a stale socket of ours.

    A path that exists and is not a socket is never removed: that would be someone else's file.
    """
    directory = path.parent
    directory.mkdir(mode=0o770, parents=True, exist_ok=True)
    info = directory.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o007:
        try:
            os.chmod(directory, mode & 0o770)
        except PermissionError:
            raise ServiceUnavailable(
                f"the socket directory {directory} is mode {mode:o} (open to everyone) and owned by uid "
                f"{info.st_uid}, so this service (uid {os.getuid()}) cannot make it 0770; put the socket in a "
                f"subdirectory the service creates itself, e.g. {directory / 'sock' / path.name}"
            ) from None
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ServiceUnavailable(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: stale, left by a dead service
        return
    finally:
        probe.close()
    raise ServiceUnavailable(f"another service is already listening on {path}")


async def wait_readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    await _wait_ready(sock, loop.add_reader, loop.remove_reader)


async def _wait_ready(sock: socket.socket, add: Any, remove: Any) -> None:
    """Wait once for the selector to report ``sock`` ready (``add``/``remove``: the loop's reader or writer)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fileno = sock.fileno()
    add(fileno, lambda: future.done() or future.set_result(None))
    try:
        await future
    finally:
        remove(fileno)


#: Room for a few fds in one recvmsg; the protocol sends at most one per frame.
_ANC_SPACE = socket.CMSG_SPACE(8 * struct.calcsize("i"))


def set_send_timeout(sock: socket.socket, seconds: float) -> None:
    """Make blocking sends on ``sock`` fail (``BlockingIOError``) after ``seconds`` without progress, in the
    kernel (``SO_SNDTIMEO``), so reads stay plain blocking calls: a Python socket timeout would ``poll``
    before every ``recv``."""
    _set_timeval(sock, socket.SO_SNDTIMEO, seconds)


def set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    """Make blocking reads on ``sock`` fail (``BlockingIOError``) after ``seconds``; 0 turns it off."""
    _set_timeval(sock, socket.SO_RCVTIMEO, seconds)


def _set_timeval(sock: socket.socket, option: int, seconds: float) -> None:
    """``struct timeval`` is two longs on Linux; on macOS its microseconds are an int followed by padding,
    which little-endian packing fills alike. A positive timeout never rounds down to 0 (= none)."""
    whole = int(seconds)
    micros = int((seconds - whole) * 1e6)
    if seconds > 0 and not whole and not micros:
        micros = 1
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", whole, micros))


def recv_with_fds(sock: socket.socket, bufsize: int, flags: int = 0) -> tuple[bytes, list[int]]:
    """``recvmsg`` that also collects any fds that arrived; the caller owns (must close) them."""
    data, ancdata, _flags, _addr = sock.recvmsg(bufsize, _ANC_SPACE, flags)
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % struct.calcsize("i")
            fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
    return data, fds
