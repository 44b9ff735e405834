"""Frame sizes and the pixels the benchmark sends: screenshots, not noise.

Every path sends the same pixels for a size, so the only difference between paths is the transport.
The content matters for the PNG paths only (PNG's cost depends on how well the image compresses): a
synthetic desktop compresses like a real screen (about 20:1), random noise would not compress at all
and would make the PNG paths look several times slower than they are on screenshots.

- 300×60 is the synthetic button (``synthetic.button_300x60``);
- other sizes are cut from, or tiled out of, the synthetic 1920×1080 desktop.

Without the DejaVu fonts it falls back to a deterministic pattern of flat blocks and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import synthetic


@dataclass(frozen=True, order=True)
class Size:
    """A frame size, RGB. Orders by pixel count."""

    pixels: int
    width: int
    height: int

    @classmethod
    def of(cls, width: int, height: int) -> Size:
        return cls(width * height, width, height)

    @classmethod
    def parse(cls, text: str) -> Size:
        """``"1920x1080"`` (width × height)."""
        width, sep, height = text.lower().replace("×", "x").partition("x")
        if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
            raise ValueError(f"a size is WIDTHxHEIGHT, not {text!r}")
        return cls.of(int(width), int(height))

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def nbytes(self) -> int:
        return self.pixels * 3


SIZES = [Size.of(300, 60), Size.of(1280, 720), Size.of(1920, 1080), Size.of(3840, 2160)]


def content_kind() -> str:
    """What the frames show, for the report."""
    return "synthetic screenshot" if synthetic.fonts_available() else "flat blocks (DejaVu fonts missing)"


@lru_cache(maxsize=1)
def _desktop() -> np.ndarray:
    return synthetic.desktop_1080p()[0]


def _pattern(height: int, width: int) -> np.ndarray:
    """Flat blocks with edges, roughly as compressible as a screen; used only without fonts."""
    y = np.arange(height, dtype=np.uint32)[:, None]
    x = np.arange(width, dtype=np.uint32)[None, :]
    blocks = ((y // 24) * 7 + (x // 80) * 13) % 251
    rgb = np.stack([blocks, (blocks * 3) % 256, (blocks * 5) % 256], axis=-1)
    return np.ascontiguousarray(rgb.astype(np.uint8))


def frame(size: Size) -> np.ndarray:
    """A C-contiguous H×W×3 uint8 screenshot of ``size``, the same on every call and in every process."""
    if not synthetic.fonts_available():
        return _pattern(size.height, size.width)
    if (size.width, size.height) == (300, 60):
        return synthetic.button_300x60()[0]
    desktop = _desktop()
    reps_y = -(-size.height // desktop.shape[0])
    reps_x = -(-size.width // desktop.shape[1])
    tiled = np.tile(desktop, (reps_y, reps_x, 1)) if reps_y > 1 or reps_x > 1 else desktop
    return np.ascontiguousarray(tiled[: size.height, : size.width])
