"""The ``recognize(frame, roi)`` callable a stream reads through, built from any engine unchanged.

It owns the path from a rectangle of a frame to lines in frame coordinates: crop as a view, convert at
most once (``engines.pixels``), call ``Engine.recognize``, shift the boxes back. It is the same path the
service takes for a request with a region of interest, so a crop is read exactly as that request would
be. What it must never do: keep the frame or a crop after the call returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..engines.base import EngineOutput
from ..engines.pixels import convert, crop
from ..engines.results import shift_lines
from ..models import DEFAULT_OPTIONS, OcrOptions, PixelFormat, Roi, TextLine


class Reads(Protocol):
    """What the reader needs to know of an engine (an ``Engine``, or the service's ``EnginePool``)."""

    @property
    def native_formats(self) -> frozenset[PixelFormat]: ...

    @property
    def accepts_strides(self) -> bool: ...


def engine_reader(
    engine: Reads,
    pixel_format: PixelFormat,
    options: OcrOptions = DEFAULT_OPTIONS,
    *,
    run: Callable[[np.ndarray, PixelFormat, OcrOptions], EngineOutput] | None = None,
) -> Callable[[np.ndarray, Roi], list[TextLine]]:
    """A ``Recognize`` for ``engine``. ``run`` replaces ``engine.recognize`` (the service passes its
    pool's call, ``lambda image, fmt, opts: pool.run_sync(image, fmt, opts)[0]``, so each crop borrows an
    engine instance the usual way)."""
    call = run or engine.recognize  # type: ignore[attr-defined]

    def recognize(frame: np.ndarray, roi: Roi) -> list[TextLine]:
        view = crop(frame, roi)
        native, native_format, copied = convert(view, pixel_format, engine.native_formats, engine.accepts_strides)
        output = call(native, native_format, options.model_copy(update={"roi": None}) if options.roi else options)
        output.bytes_copied += copied  # the conversion's copy is this read's too: counted, not hidden
        del native, view
        return shift_lines(output.lines, roi.x, roi.y)

    return recognize
