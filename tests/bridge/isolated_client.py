"""Run behind the namespace boundary by the tests: prove isolation, then OCR over shared memory.

Prints one JSON line with what it saw; exits non-zero on any failure.
"""

from __future__ import annotations

import json
import os
import socket
import sys

import numpy as np

from shmbridge.client.session import SessionClient
from shmbridge.engines.null import checksum


def main() -> int:
    socket_path, http_port, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    report: dict[str, object] = {"dev_shm": sorted(os.listdir("/dev/shm")), "tmp": sorted(os.listdir("/tmp"))}
    try:  # the host's loopback must be unreachable from here
        socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
        report["http_reachable"] = True
    except OSError:
        report["http_reachable"] = False
    rng = np.random.default_rng(7)
    sums = []
    with SessionClient(socket_path, timeout=20) as session, session.lease(720, 1280) as lease:
        frame = lease.frame(720, 1280)
        for _ in range(frames):
            frame[:] = rng.integers(0, 256, frame.shape, dtype=np.uint8)
            result = session.submit(lease)
            sums.append(result.checksum == checksum(frame, "full"))
    report["checksums_ok"] = all(sums) and len(sums) == frames
    print(json.dumps(report))
    return 0 if report["checksums_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
