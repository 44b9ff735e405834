"""Fixtures for the stream tests: the real rapidocr engine (offline) and frames drawn with Pillow.

Frames are small pages of text in DejaVu Sans, so a full read takes a fraction of a second and every
test can compare a stream's answer with a full read of the same frame by the same engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shmbridge.bench import synthetic
from shmbridge.engines import create_engine
from shmbridge.engines.base import Engine
from shmbridge.engines.results import reading_order
from shmbridge.models import PixelFormat, Roi, TextLine
from shmbridge.streams import engine_reader

from ..engines.conftest import offline, require_fonts

Recognize = Callable[[np.ndarray, Roi], list[TextLine]]

WIDTH = 640
LINE_HEIGHT = 34
WORDS = [
    "Open the settings panel",
    "Save changes before leaving",
    "Network status connected",
    "Battery level normal",
    "Download folder selected",
    "Search results for printers",
    "Last update yesterday evening",
    "Shared with three people",
    "Recent files and folders",
    "Keyboard layout English",
    "Display brightness medium",
    "Privacy options reviewed",
    "Printer queue is empty",
    "Calendar shows next week",
    "Mail sync every hour",
    "Backup finished at noon",
]


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    require_fonts()
    with offline() as attempts:
        built = create_engine("rapidocr")
        built.warm_up()
        yield built
        built.close()
    assert attempts == [], f"rapidocr tried to use the network: {attempts}"


@pytest.fixture(scope="session")
def recognize(engine: Engine) -> Recognize:
    return engine_reader(engine, PixelFormat.RGB)


def page(lines: Sequence[str], *, height: int | None = None, top: int = 12, width: int = WIDTH) -> np.ndarray:
    """A white page with one line of dark text per entry, ``LINE_HEIGHT`` apart, read-only."""
    total = height if height is not None else top + LINE_HEIGHT * len(lines) + 12
    canvas = Image.new("RGB", (width, total), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = synthetic._font("sans", 20)
    for index, text in enumerate(lines):
        draw.text((16, top + index * LINE_HEIGHT), text, fill=(20, 20, 20), font=font)
    frame = np.asarray(canvas)
    frame.flags.writeable = False
    return frame


def full_read(recognize: Recognize, frame: np.ndarray) -> list[TextLine]:
    return reading_order(recognize(frame, Roi(x=0, y=0, width=frame.shape[1], height=frame.shape[0])))


def texts(lines: Sequence[TextLine]) -> list[str]:
    return [line.text for line in lines]
