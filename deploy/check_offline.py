"""Proof that the OCR engine works with no network: run it once on a drawn test card.

Run it in the built image with networking disabled (``docker run --network none IMAGE python
/opt/shmbridge/check_offline.py``, a step of the container tests): if the engine tried to fetch a model,
it would fail here instead of the container doing it at run time. It uses only the engine interface
(``create_engine``, ``warm_up``, ``recognize``), no socket and no HTTP, and exits non-zero when the engine
cannot be built or reads nothing.

    python check_offline.py [--engine NAME]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CARD_TEXT = "shmbridge offline check 0123"


def test_card(text: str = CARD_TEXT) -> np.ndarray:
    """Black text on white, H×W×3 RGB uint8, large enough for any detector."""
    image = Image.new("RGB", (960, 160), "white")
    font = ImageFont.load_default(size=48)
    ImageDraw.Draw(image).text((32, 48), text, fill="black", font=font)
    return np.asarray(image)


def to_format(rgb: np.ndarray, pixel_format: str) -> np.ndarray:
    """Convert an RGB card into one of the engine's native pixel formats."""
    if pixel_format == "rgb":
        return rgb
    if pixel_format == "bgr":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if pixel_format == "gray":
        return np.ascontiguousarray(rgb.mean(axis=2).astype(np.uint8))
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    if pixel_format == "rgba":
        return np.concatenate([rgb, alpha], axis=2)
    if pixel_format == "bgra":
        return np.concatenate([rgb[:, :, ::-1], alpha], axis=2)
    raise ValueError(f"unknown pixel format {pixel_format!r}")


def main(argv: list[str] | None = None) -> int:
    from shmbridge.engines import create_engine, default_engine_name
    from shmbridge.models import OcrOptions, PixelFormat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default=default_engine_name(), help="engine name (default: platform's)")
    args = parser.parse_args(argv)

    engine = create_engine(args.engine)
    try:
        engine.warm_up()
        formats = sorted(fmt.value for fmt in engine.native_formats)
        chosen = PixelFormat(formats[0])
        for preferred in ("rgb", "bgr"):
            if preferred in formats:
                chosen = PixelFormat(preferred)
                break
        output = engine.recognize(to_format(test_card(), chosen.value), chosen, OcrOptions())
    finally:
        engine.close()

    text = " ".join(line.text for line in output.lines)
    if not text and not output.checksum:
        print(f"engine {args.engine!r} ran offline but read nothing from the test card", file=sys.stderr)
        return 1
    print(f"engine {args.engine!r} works offline: {text or 'checksum ' + str(output.checksum)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
