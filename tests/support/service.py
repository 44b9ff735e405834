"""Start a real ``shmbridge serve`` subprocess for tests, and stop it cleanly whatever happens.

Every loop here is bounded in time; every process started is terminated, then killed if it lingers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningService:
    process: subprocess.Popen[bytes]
    socket_path: Path
    port: int | None
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        assert self.port is not None, "HTTP is off for this service"
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _socket_ready(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _http_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_service(
    workdir: Path,
    *extra: str,
    engine: str = "null",
    http: bool = True,
    shm: bool = True,
    env: dict[str, str] | None = None,
    socket_path: Path | None = None,
    launcher: tuple[str, ...] = (),
) -> RunningService:
    """Start ``shmbridge serve`` and wait until every enabled mode answers. ``launcher`` goes in front of
    the command (``("prlimit", "--nofile=256:512")``, say)."""
    socket_path = socket_path or workdir / "sock" / "ocr.sock"
    port = free_port() if http else None
    args = [*launcher, sys.executable, "-m", "shmbridge.cli", "serve", "--engine", engine, "--socket", str(socket_path)]
    args += ["--port", str(port)] if http else ["--no-http"]
    if not shm:
        args.append("--no-shm")
    args += list(extra)
    log_path = workdir / f"service-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    service = RunningService(process, socket_path, port, log_path, args)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{service.log()}")
        if (not shm or _socket_ready(socket_path)) and (port is None or _http_ready(port)):
            return service
        time.sleep(0.05)
    service.stop(signal.SIGKILL)
    raise RuntimeError(f"service did not become ready within {STARTUP_TIMEOUT}s:\n{service.log()}")


@contextlib.contextmanager
def running_service(workdir: Path, *extra: str, **kwargs: object) -> Iterator[RunningService]:
    service = start_service(workdir, *extra, **kwargs)  # type: ignore[arg-type]
    try:
        yield service
    finally:
        service.stop()


def shm_mappings(pid: int) -> list[str]:
    """Lines of /proc/<pid>/maps that belong to shmbridge segments."""
    return [line for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "shmbridge-" in line]


def shm_fds(pid: int) -> list[str]:
    """Targets of /proc/<pid>/fd links that are shmbridge memfds."""
    targets = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(entry)
            if "shmbridge-" in target:
                targets.append(target)
    return targets


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels match, from Prometheus text."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
