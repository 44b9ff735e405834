"""Run inside a client container by the container tests (``python -c <this file> ACTION SOCKET [URL]``).

Uses only the public client (``shmbridge.Client``) of the image's own install, and talks to the test over
stdout (one JSON object a line) and stdin (one command a line), so the test needs no file in the
container and no network to it. Actions:

- ``frame``: a 1080p frame written in place in shared memory, sent by reference; prints the result, the
  client's uid/gid, IPC namespace and /dev/shm, then holds the session open until stdin says ``done``.
- ``in-flight``: starts a request on a slow service, prints ``submitted``, then waits to be killed.
- ``steps``: two clients (auto mode with HTTP, shm-only); each stdin line ``auto`` or ``shm`` makes one
  call and prints its mode, or the error's type when it raises.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import numpy as np

import shmbridge
from shmbridge.engines.null import checksum


def _say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def _pattern(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def frame(socket: str) -> None:
    with shmbridge.Client(socket=socket, mode="shm", timeout=60) as client, client.frame(1080, 1920) as pixels:
        pixels[:] = _pattern(1080, 1920, 7)  # rendered straight into the shared slot
        result = client.ocr(pixels)
        _say(
            mode=result.communication_mode,
            checksum_matches=result.checksum == checksum(pixels, "full"),
            shape=[result.height, result.width],
            uid=os.getuid(),
            gid=os.getgid(),
            ipc=os.readlink("/proc/self/ns/ipc"),
            dev_shm=sorted(os.listdir("/dev/shm")),
        )
        sys.stdin.readline()  # the test reads the service's maps while this session holds the frame


def in_flight(socket: str) -> None:
    client = shmbridge.Client(socket=socket, mode="shm", timeout=120).open()
    pixels = _pattern(480, 640, 3)
    threading.Thread(target=client.ocr, args=(pixels,), daemon=True).start()
    time.sleep(0.5)  # the test then checks the service has it in flight (its slow engine holds it for seconds)
    _say(state="submitted")
    time.sleep(120)  # until `docker kill`


def steps(socket: str, url: str) -> None:
    # A reconnect waits at least 0.9 s after a lost session, so the first call after it is surely served
    # over HTTP (http_fallback), however slowly this container is scheduled; the test then polls for it.
    retry = shmbridge.RetryPolicy(attempts=2, backoff=1.0, max_backoff=2.0, jitter=0.1)
    timeouts = shmbridge.Timeouts(request=5.0, session=5.0, connect=1.0)
    clients = {
        "auto": shmbridge.Client(url, socket=socket, timeout=timeouts, retry=retry),
        "shm": shmbridge.Client(url, socket=socket, mode="shm", timeout=timeouts, retry=retry),
    }
    _say(state="ready")
    for number, line in enumerate(sys.stdin):
        name = line.strip()
        if name not in clients:
            break
        pixels = _pattern(120, 160, number)
        try:
            result = clients[name].ocr(pixels)
        except Exception as exc:
            _say(client=name, error=type(exc).__name__, typed=isinstance(exc, shmbridge.ShmBridgeError))
            continue
        _say(client=name, mode=result.communication_mode, checksum_matches=result.checksum == checksum(pixels, "full"))
    for client in clients.values():
        client.close()


def main() -> int:
    action, socket, *rest = sys.argv[1:]
    if action == "frame":
        frame(socket)
    elif action == "in-flight":
        in_flight(socket)
    elif action == "steps":
        steps(socket, rest[0])
    else:
        raise SystemExit(f"unknown action {action!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
