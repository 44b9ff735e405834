"""Service and client containers on a private engine, as the container tests use them.

Owns starting a ``shmbridge serve`` container and waiting until it answers, looking at it from the host
(its pid, fds, maps, /dev/shm, namespaces, metrics), and running ``tests/deploy/container_client.py`` in a
client container that talks to the test over stdin/stdout. Every wait is bounded; every container made
here is removed by ``remove`` (the engine's own teardown removes any that a failed test left). It never
publishes a port, never joins a bridge network and never pulls an image.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.docker_engine import PrivateDockerd

SOCKET_DIR = "/run/shmbridge"
SOCKET = f"{SOCKET_DIR}/ocr.sock"
CLIENT_SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "container_client.py"
READY_TIMEOUT = 120.0
#: Exits 0 once the service's socket exists and /health answers 200 (urlopen raises on 503).
READY_PROBE = (
    "import os, sys, urllib.request\n"
    "sys.exit(0 if os.path.exists(sys.argv[1]) and urllib.request.urlopen(sys.argv[2], timeout=3).status == 200"
    " else 1)"
)


def volume_mount(volume: str, read_only: bool = False) -> str:
    return f"--mount=type=volume,source={volume},target={SOCKET_DIR}" + (",readonly" if read_only else "")


@dataclass
class ServiceContainer:
    daemon: PrivateDockerd
    name: str
    http_url: str = "http://127.0.0.1:8080"

    def inspect(self, template: str) -> str:
        return self.daemon.run("inspect", "--format", template, self.name).stdout.strip()

    @property
    def pid(self) -> int:
        """The service's pid as the host sees it (the container's first process: shmbridge serve)."""
        pid = int(self.inspect("{{.State.Pid}}"))
        assert pid > 0, f"{self.name} is not running:\n{self.logs()}"
        return pid

    def logs(self) -> str:
        done = self.daemon.run("logs", "--tail", "40", self.name, check=False)
        return done.stdout + done.stderr

    def python(self, code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``python -c CODE ARGS`` inside the service container (its own network namespace)."""
        return self.daemon.run("exec", self.name, "python", "-c", code, *args, timeout=timeout, check=False)

    def ready(self) -> bool:
        return self.python(READY_PROBE, SOCKET, f"{self.http_url}/health", timeout=30).returncode == 0

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.inspect("{{.State.Running}}") != "true":
                raise AssertionError(f"{self.name} exited:\n{self.logs()}")
            if self.ready():
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} was not ready within {timeout:.0f}s:\n{self.logs()}")

    def metrics_text(self) -> str:
        code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
        done = self.python(code, f"{self.http_url}/metrics")
        assert done.returncode == 0, done.stderr
        return done.stdout

    def dev_shm(self) -> list[str]:
        return sorted(os.listdir(f"/proc/{self.pid}/root/dev/shm"))

    def namespace(self, kind: str) -> str:
        return os.readlink(f"/proc/{self.pid}/ns/{kind}")


def container_mounts(daemon: PrivateDockerd, name: str) -> list[dict[str, object]]:
    """What ``docker inspect`` says is mounted into container ``name`` (volumes and binds)."""
    return json.loads(daemon.run("inspect", "--format", "{{json .Mounts}}", name).stdout)


def start_service(
    daemon: PrivateDockerd,
    image: str,
    name: str,
    volume: str,
    *serve_args: str,
    run_args: tuple[str, ...] = (),
    network: str = "none",
    port: int = 8080,
) -> ServiceContainer:
    """``docker run -d`` a service (null engine unless ``serve_args`` say otherwise) and wait until it answers."""
    host = "127.0.0.1" if network == "host" else "0.0.0.0"  # on the host's network, loopback only
    argv = ["run", "-d", f"--name={name}", f"--network={network}", "--user=10001:10001", volume_mount(volume),
            *run_args, image, "shmbridge", "serve", "--host", host, "--port", str(port), *serve_args]  # fmt: skip
    daemon.run(*argv)
    service = ServiceContainer(daemon, name, f"http://127.0.0.1:{port}")
    service.wait_ready()
    return service


@dataclass
class ClientContainer:
    """A running ``container_client.py``; its stdout lines arrive on a queue as they are printed."""

    daemon: PrivateDockerd
    name: str
    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    stderr: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, sink) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink(line)

    def next_json(self, timeout: float = 60) -> dict[str, object]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name} printed nothing in {timeout:.0f}s: {''.join(self.stderr)}") from None
        return json.loads(line)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def remove(self) -> None:
        self.daemon.run("rm", "-f", self.name, check=False, timeout=60)
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_client(
    daemon: PrivateDockerd,
    image: str,
    name: str,
    volume: str,
    *script_args: str,
    user: str = "20002:10001",
    network: str = "none",
) -> ClientContainer:
    """``container_client.py ARGS`` in a client container that shares only the socket volume (read-only)."""
    argv = [daemon.cli, "run", "--rm", "-i", f"--name={name}", f"--network={network}", f"--user={user}",
            "--no-healthcheck", volume_mount(volume, read_only=True), image,
            "python", "-c", CLIENT_SCRIPT.read_text(), *script_args]  # fmt: skip
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=daemon.env
    )
    return ClientContainer(daemon, name, process)
