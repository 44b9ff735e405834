"""The services a benchmark measures: one it starts and owns, or one already running that it is pointed at.

``own_service`` starts ``shmbridge serve`` in a subprocess with its socket in a private temp dir, its
region dir on tmpfs (``/dev/shm``) when there is one, and HTTP on a free loopback port; it waits until
every enabled door answers and always stops the process (SIGTERM, then SIGKILL) and removes both dirs.
``external_service`` describes a running one; its pid (for CPU accounting) is read from the socket's
``SO_PEERCRED``, so nothing has to be told twice.

Rules: every wait is bounded in time; nothing here measures anything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT = 120.0  # rapidocr loads and warms its models before the socket appears
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class ServiceHandle:
    """Where a service listens and which process does its work. Picklable: workers receive it."""

    engine: str
    url: str | None
    socket_path: str | None
    region_dir: str | None
    pid: int | None
    own: bool
    checksum_mode: str | None = None
    #: The service's low-latency mode as ``/api/v1/bridge/info`` reports it (None: not asked, no HTTP).
    low_latency: dict[str, Any] | None = None

    def info(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "own": self.own,
            "url": self.url,
            "socket_path": self.socket_path,
            "region_dir": self.region_dir,
            "pid": self.pid,
            "checksum_mode": self.checksum_mode,
            "low_latency": self.low_latency,
        }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peer_pid(socket_path: str | os.PathLike[str]) -> int | None:
    """The pid of the process listening on a Unix socket (``SO_PEERCRED``), or ``None`` off Linux."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(os.fspath(socket_path))
            raw = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    pid, _uid, _gid = struct.unpack("3i", raw)
    return pid or None


def _socket_ready(path: Path) -> bool:
    return path.exists() and peer_pid(path) is not None


def _http_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def bridge_info(url: str) -> dict[str, Any]:
    """``GET /api/v1/bridge/info``: engine, modes and limits of a running service."""
    response = httpx.get(f"{url}/api/v1/bridge/info", timeout=10, trust_env=False)
    response.raise_for_status()
    return dict(response.json())


def _region_parent() -> str | None:
    """tmpfs if there is one: region files then live in memory, never in the page cache of a disk."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextlib.contextmanager
def own_service(
    engine: str = "null",
    *,
    http: bool = True,
    regions: bool = True,
    workers: int | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    log_level: str = "warning",
) -> Iterator[ServiceHandle]:
    """A private ``shmbridge serve`` for the duration of the block; the null engine uses sampled checksums."""
    tmp = tempfile.mkdtemp(prefix="shmb-bench-")
    region_dir = tempfile.mkdtemp(prefix="shmb-bench-regions-", dir=_region_parent()) if regions and http else None
    socket_path = Path(tmp) / "ocr.sock"
    port = free_port() if http else None
    args = [sys.executable, "-m", "shmbridge.cli", "serve", "--engine", engine, "--socket", str(socket_path),
            "--log-level", log_level]  # fmt: skip
    args += ["--port", str(port)] if http else ["--no-http"]
    if region_dir:
        args += ["--region-dir", region_dir]
    if workers:
        args += ["--workers", str(workers)]
    if engine == "null":
        args += ["--engine-option", "checksum_mode=sampled"]
    args += extra or []
    log_path = Path(tmp) / "service.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    url = f"http://127.0.0.1:{port}" if port else None
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (_socket_ready(socket_path) and (url is None or _http_ready(url))):
            if process.poll() is not None or time.monotonic() > deadline:
                log = log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"the benchmark service ({engine}) did not start:\n{log}")
            time.sleep(0.05)
        yield ServiceHandle(
            engine=engine,
            url=url,
            socket_path=str(socket_path),
            region_dir=region_dir,
            pid=process.pid,
            own=True,
            checksum_mode="sampled" if engine == "null" else None,
            low_latency=bridge_info(url).get("low_latency") if url else None,
        )
    except BaseException:
        # The run failed while this service was up: its log is about to be deleted with the temp dir.
        tail = log_path.read_text(errors="replace")[-3000:].strip()
        if tail:
            print(f"--- last lines of the {engine} service's log ---\n{tail}", file=sys.stderr)
        raise
    finally:
        _stop(process)
        shutil.rmtree(tmp, ignore_errors=True)
        if region_dir:
            shutil.rmtree(region_dir, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def external_service(url: str | None, socket_path: str | None, region_dir: str | None) -> ServiceHandle:
    """Describe a running service; the engine and checksum mode come from its ``/api/v1/bridge/info``."""
    engine, checksum_mode, low_latency = "unknown", None, None
    if url:
        url = url.rstrip("/")
        info = bridge_info(url)
        low_latency = info.get("low_latency")
        engine_info = info.get("engine", {})
        engine = str(engine_info.get("name", engine))
        checksum_mode = engine_info.get("checksum_mode") if engine == "null" else None
    pid = peer_pid(socket_path) if socket_path else None
    return ServiceHandle(engine, url, socket_path, region_dir, pid, own=False, checksum_mode=checksum_mode,
                         low_latency=low_latency)  # fmt: skip
