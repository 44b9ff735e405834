"""Run behind the namespace boundary by ``test_boundary.py``: real OCR over shared memory, then a report.

Renders a known line with Pillow, sends it through a session (shared memory; the client has no route to
the service's HTTP and no shared /dev/shm or /tmp), and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shmbridge.client.session import SessionClient

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def main() -> int:
    socket_path, expected = sys.argv[1], sys.argv[2]
    image = Image.new("RGB", (640, 80), "white")
    ImageDraw.Draw(image).text((16, 20), expected, fill="black", font=ImageFont.truetype(FONT, 32))
    pixels = np.asarray(image)
    with SessionClient(socket_path, timeout=120) as session, session.lease(80, 640) as lease:
        lease.frame(80, 640)[:] = pixels  # written into shared memory once; sent by reference
        result = session.submit(lease)
    print(
        json.dumps(
            {
                "text": result.text,
                "engine": result.engine,
                "dev_shm": sorted(os.listdir("/dev/shm")),
                "namespaces": {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in ("mnt", "net", "ipc")},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
