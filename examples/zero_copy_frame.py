"""Zero copy: render straight into shared memory with ``client.frame()`` and OCR it by reference.

``frame()`` lends you a slot of shared memory as a writable numpy array. Whatever you draw into it is what the
service reads: ``client.ocr(frame)`` sends only the slot's name, offset and shape, never the pixels. Without
shared memory (HTTP mode, or no socket) the frame is an ordinary array and travels over HTTP instead.
Reads ``$SHMBRIDGE_URL`` and ``$SHMBRIDGE_SOCKET_PATH`` like the other examples.
"""

import os

import shmbridge

url = os.environ.get("SHMBRIDGE_URL", "http://127.0.0.1:8080")

with shmbridge.Client(url) as client:
    with client.frame(720, 1280) as frame:  # H×W×3 uint8, RGB
        for step in range(3):
            frame[:] = 255  # render: a white screen with a dark bar that moves
            frame[100 + 40 * step : 140 + 40 * step, 200:1000] = 30
            result = client.ocr(frame)
            print(f"frame {step}: {result.communication_mode}, {result.total_time_ms:.2f} ms")
        # A crop of the frame travels by reference too (its row pitch goes on the wire).
        result = client.ocr(frame[80:300, 150:1050])
        print(f"crop: {result.communication_mode}, {result.width}x{result.height}")

    metrics = client.metrics()
    print(f"zero-copy ratio on the service: {metrics['zero_copy_ratio']:.0%}")
