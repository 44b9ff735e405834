"""Quick start (blocking): OCR a PIL image, a numpy array and a file with ``shmbridge.Client``.

Run a service first (``shmbridge serve``). The client finds it at ``$SHMBRIDGE_URL`` (default
http://127.0.0.1:8080) and uses shared memory through ``$SHMBRIDGE_SOCKET_PATH``, or the socket the service
advertises; without one it falls back to HTTP by itself.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import shmbridge

url = os.environ.get("SHMBRIDGE_URL", "http://127.0.0.1:8080")

image = Image.new("RGB", (480, 120), "white")
ImageDraw.Draw(image).text((20, 40), "Hello from shmbridge", fill="black")

with shmbridge.Client(url) as client:
    # A PIL image: copied into shared memory once, then OCR'd where it lies.
    result = client.ocr(image)
    print(f"{result.communication_mode}: {result.text!r} ({result.processing_time_ms:.1f} ms in the service)")

    # A numpy array (H×W×3 uint8 is RGB; pass pixel_format="bgr" for OpenCV frames), only its left half.
    pixels = np.asarray(image)
    result = client.ocr(pixels, roi="0,0,240,120", recognition_level="fast")
    print(f"{result.communication_mode}: {len(result.lines)} line(s), {result.total_time_ms:.1f} ms in total")

    # A file on disk (PNG, JPEG, ...): decoded straight into shared memory.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hello.png"
        image.save(path)
        for line in client.detect_text(path):
            print(f"  {line.text!r} at x={line.box.x:.0f} y={line.box.y:.0f} ({line.confidence:.2f})")

    print("service:", client.health()["status"])
