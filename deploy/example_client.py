"""Example client: OCR an image through shmbridge and say which transport carried it.

    python example_client.py [IMAGE ...] [--url URL] [--socket PATH] [--interval SECONDS] [--require-shm]

With no image it OCRs a test card drawn with Pillow, so a container needs no input file. The defaults
come from ``SHMBRIDGE_URL`` and ``SHMBRIDGE_SOCKET_PATH``, as the compose files and manifests set them.
Each result prints as ``<communication_mode> <text>``: ``shared_memory`` means the pixels went through a
sealed memfd passed over the socket, ``http`` that no socket was usable, ``http_fallback`` that the
socket failed and the client fell back to HTTP. ``--require-shm`` exits 2 unless every request used
shared memory, which makes this script a deployment smoke test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    import shmbridge

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_SOCKET = "/run/shmbridge/ocr.sock"
SHARED_MEMORY = "shared_memory"


def test_card(text: str = "Hello from shmbridge 42") -> np.ndarray:
    """Black text on white as an H×W×3 RGB uint8 array."""
    image = Image.new("RGB", (960, 160), "white")
    ImageDraw.Draw(image).text((32, 48), text, fill="black", font=ImageFont.load_default(size=48))
    return np.asarray(image)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="OCR images through shmbridge and print the transport used.")
    parser.add_argument("images", nargs="*", type=Path, help="image files (default: a drawn test card)")
    parser.add_argument("--url", default=os.environ.get("SHMBRIDGE_URL", DEFAULT_URL), help="HTTP base URL")
    parser.add_argument(
        "--socket", default=os.environ.get("SHMBRIDGE_SOCKET_PATH", DEFAULT_SOCKET), help="Unix socket path"
    )
    parser.add_argument("--interval", type=float, default=0.0, help="repeat every SECONDS until stopped (0: run once)")
    parser.add_argument("--require-shm", action="store_true", help="exit 2 unless shared memory was used")
    return parser


def run_once(client: shmbridge.Client, inputs: list[Path | np.ndarray]) -> list[str]:
    """OCR every input with ``client`` and return the communication modes seen."""
    modes = []
    for item in inputs:
        result = client.ocr(item)
        label = item if isinstance(item, Path) else "test card"
        print(f"{label}: {result.communication_mode} {result.text!r}", flush=True)
        modes.append(result.communication_mode)
    return modes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import shmbridge  # imported late so --help works without the package's dependencies

    inputs: list[Path | np.ndarray] = list(args.images) or [test_card()]
    with shmbridge.Client(url=args.url, socket=args.socket) as client:
        while True:
            modes = run_once(client, inputs)
            if args.require_shm and any(mode != SHARED_MEMORY for mode in modes):
                print(f"expected {SHARED_MEMORY}, got {sorted(set(modes))}: see docs/deployment.md", file=sys.stderr)
                return 2
            if args.interval <= 0:
                return 0
            time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
