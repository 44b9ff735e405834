"""The null engine: no OCR, only a checksum of the pixels it read.

It exists to measure transports and to prove zero-copy: the client computes the same checksum over the
pixels it wrote, and equality means the service read exactly those bytes. Two modes:

- ``full``: CRC-32 over every pixel, row by row, straight from the (possibly strided) view;
- ``sampled`` (default): CRC-32 over a grid of at most 16×16 pixels (every
  ``height // 16``-th row and ``width // 16``-th column from the top-left), so its
  cost does not grow with the frame and a benchmark sees the transport, not the engine.
  Each grid point is a cache line the service must fetch from the client's core, so the grid is kept
  small (16×16 costs a quarter of 32×32; docs/benchmarks.md, "Figures behind the code's choices").

``delay_ms`` makes it sleep, which turns it into a blocking engine run in the thread pool: tests use it
to have a request genuinely in flight.
"""

from __future__ import annotations

import time
import zlib
from typing import ClassVar, Literal

import numpy as np

from ..models import OcrOptions, PixelFormat
from .base import Engine, EngineOutput

ChecksumMode = Literal["full", "sampled"]
SAMPLE_GRID = 16


def checksum(image: np.ndarray, mode: ChecksumMode = "sampled") -> str:
    """CRC-32 (hex) of ``image``'s pixels in row-major order, over all pixels or the sample grid."""
    if mode == "sampled":
        height, width = image.shape[:2]
        sample = image[:: max(1, height // SAMPLE_GRID), :: max(1, width // SAMPLE_GRID)][:SAMPLE_GRID, :SAMPLE_GRID]
        return f"{zlib.crc32(sample.tobytes()):08x}"
    crc = 0
    if image.flags.c_contiguous:
        return f"{zlib.crc32(memoryview(image).cast('B')):08x}"
    for row in image:
        data = memoryview(row).cast("B") if row.flags.c_contiguous else row.tobytes()
        crc = zlib.crc32(data, crc)
    return f"{crc:08x}"


class NullEngine(Engine):
    name: ClassVar[str] = "null"
    native_formats: ClassVar[frozenset[PixelFormat]] = frozenset(PixelFormat)
    accepts_strides: ClassVar[bool] = True

    def __init__(self, checksum_mode: ChecksumMode = "sampled", delay_ms: float = 0.0) -> None:
        if checksum_mode not in ("full", "sampled"):
            raise ValueError(f"checksum_mode is 'full' or 'sampled', not {checksum_mode!r}")
        self.checksum_mode: ChecksumMode = checksum_mode
        self.delay_s = float(delay_ms) / 1000.0
        # An instance attribute shadows the class default: with a delay it blocks and goes to the pool.
        self.blocking = self.delay_s > 0  # type: ignore[misc]

    def recognize(self, image: np.ndarray, pixel_format: PixelFormat, options: OcrOptions) -> EngineOutput:
        if self.delay_s:
            time.sleep(self.delay_s)
        return EngineOutput(checksum=checksum(image, self.checksum_mode))

    def capabilities(self) -> dict[str, object]:
        return {**super().capabilities(), "checksum_mode": self.checksum_mode, "ocr": False}
