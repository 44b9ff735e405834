"""Helpers for the HTTP service tests: run a real ``shmbridge serve`` process, make images.

A ``ServiceProcess`` is a subprocess started exactly as a user would start it, bound to port 0 on loopback
with its socket in a temporary directory; the bound port is read from its log. Every wait is bounded in
count and time, and ``stop`` always ends the process (terminate, then kill).
"""

from __future__ import annotations

import base64
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
_LISTENING = re.compile(r"HTTP listening on ([^\s:]+):(\d+)")
_START_TIMEOUT = 120.0  # rapidocr loads models on a shared 2-core machine

#: Limits of the shared null service (conftest.null_service); tests derive "too large" inputs from these.
MAX_FRAME_BYTES = 1 << 20
MAX_PIXELS = 600_000
MAX_REGIONS_PER_CLIENT = 4
MAX_REGION_BYTES = 1 << 21


@dataclass
class ServiceProcess:
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    socket_path: Path
    region_dir: Path | None
    base_url: str = ""
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, timeout: float = 30.0) -> httpx.Client:
        client = httpx.Client(base_url=self.base_url, timeout=timeout)
        self.clients.append(client)
        return client

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Terminate, wait (bounded), kill if needed; close clients. Safe to call twice."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_service(
    workdir: Path,
    *args: str,
    engine: str = "null",
    regions: bool = True,
    env: dict[str, str] | None = None,
    port: str | None = "0",
    prefix: Sequence[str] = (),
) -> ServiceProcess:
    """Start ``shmbridge serve`` (behind ``prefix``, a wrapper such as ``setpriv ... --``) and return once
    ``/health`` answers 200."""
    workdir.mkdir(parents=True, exist_ok=True)
    socket_path = workdir / "run" / "ocr.sock"
    region_dir = workdir / "regions" if regions else None
    command = [*prefix, sys.executable, "-m", "shmbridge.cli", "serve", "--engine", engine]
    command += ["--socket", str(socket_path)]
    if port is not None:
        command += ["--port", port]
    if region_dir is not None:
        command += ["--region-dir", str(region_dir)]
    command += list(args)
    log_path = workdir / "serve.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    service = ServiceProcess(proc, workdir, log_path, socket_path, region_dir)
    try:
        host, bound = _wait_for_port(service)
        service.base_url = f"http://{host}:{bound}"
        _wait_healthy(service)
    except BaseException:
        service.stop()
        raise
    return service


def _wait_for_port(service: ServiceProcess) -> tuple[str, int]:
    deadline = time.monotonic() + _START_TIMEOUT
    for _ in range(int(_START_TIMEOUT / 0.05)):
        match = _LISTENING.search(service.log())
        if match:
            return match.group(1), int(match.group(2))
        if service.proc.poll() is not None:
            raise RuntimeError(f"shmbridge serve exited with {service.proc.returncode}:\n{service.log()}")
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise TimeoutError(f"shmbridge serve did not report its port:\n{service.log()}")


def _wait_healthy(service: ServiceProcess) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    with httpx.Client(base_url=service.base_url, timeout=5.0) as client:
        for _ in range(int(_START_TIMEOUT / 0.05)):
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if service.proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    raise TimeoutError(f"shmbridge serve never became healthy:\n{service.log()}")


def wait_until(predicate, timeout: float = 10.0, step: float = 0.01) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true; bounded in time and in count."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / step) + 1):
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return False


# -- images ----------------------------------------------------------------------------------------


def pattern(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Deterministic noise: every pixel differs, so a checksum proves which bytes were read."""
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def encode(array: np.ndarray, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **save)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def render_text(lines: list[str], size: int = 32, padding: int = 24) -> Image.Image:
    """Black text on white, one line per entry, in DejaVu Sans: what an old client would screenshot."""
    font = ImageFont.truetype(FONT, size)
    line_height = int(size * 1.6)
    width = max(int(font.getlength(line)) for line in lines) + 2 * padding
    image = Image.new("RGB", (width, line_height * len(lines) + 2 * padding), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((padding, padding + index * line_height), line, font=font, fill="black")
    return image
