"""What ``client.watch()`` knows between frames: the last screen's digest and lines, and what changed.

Owns: the change gate (a digest of the captured pixels: an unchanged screen costs a capture and one pass
over its bytes, never an OCR), the line diff (lines added and removed since the previous frame, matched by
text and box), ``WatchFrame`` (what each step yields) and the pacing arithmetic. Both clients' ``watch``
loops drive one ``Watcher``; they differ only in how they wait.

Must never: capture, OCR or sleep itself (the shells do), or keep a copy of the pixels.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..models import OcrResult, TextLine
from .screen import Capture, CaptureMethod

#: Two boxes with the same text are the same line when they overlap this much (intersection over union):
#: the engine's boxes for an unchanged line move by a pixel or two between reads.
SAME_PLACE_IOU = 0.5


@dataclass(frozen=True)
class WatchFrame:
    """One step of ``watch``: the screen's lines now, and what changed since the previous step.

    ``changed`` is False when the pixels did not change: then no OCR ran, ``result`` is the previous one and
    ``added``/``removed`` are empty. ``result.lines`` always describes the whole captured region."""

    index: int
    changed: bool
    result: OcrResult
    added: list[TextLine] = field(default_factory=list)
    removed: list[TextLine] = field(default_factory=list)
    capture: CaptureMethod = "shared_memory"
    stream: str | None = None
    warnings: tuple[str, ...] = ()


def _overlap(a: TextLine, b: TextLine) -> float:
    """Intersection over union of two lines' boxes."""
    width = min(a.box.x + a.box.width, b.box.x + b.box.width) - max(a.box.x, b.box.x)
    height = min(a.box.y + a.box.height, b.box.y + b.box.height) - max(a.box.y, b.box.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.box.width * a.box.height + b.box.width * b.box.height - inter)


def diff_lines(before: list[TextLine], after: list[TextLine]) -> tuple[list[TextLine], list[TextLine]]:
    """``(added, removed)``: lines of ``after`` with no line of the same text in about the same place in
    ``before``, and the reverse. Each line of ``before`` matches at most one of ``after``."""
    unmatched = list(before)
    added: list[TextLine] = []
    for line in after:
        best = max((old for old in unmatched if old.text == line.text), key=lambda old: _overlap(old, line),
                   default=None)  # fmt: skip
        if best is not None and _overlap(best, line) >= SAME_PLACE_IOU:
            unmatched.remove(best)
        else:
            added.append(line)
    return added, unmatched


class Watcher:
    """The state of one ``watch``: feed it each capture, then (if it asks) the OCR result of that capture."""

    def __init__(self, interval: float, stream: str | None = None, frames: int | None = None) -> None:
        if interval < 0:
            raise ValueError("interval must be >= 0 seconds")
        if frames is not None and frames < 1:
            raise ValueError("frames must be at least 1 (or None: no end)")
        self.interval = interval
        self.frames = frames
        self.stream = stream
        self.index = -1
        self._digest: int | None = None
        self._result: OcrResult | None = None
        self._next_due = time.monotonic()

    @property
    def running(self) -> bool:
        """True while steps remain (always, without a ``frames`` bound)."""
        return self.frames is None or self.index + 1 < self.frames

    def needs_ocr(self, capture: Capture) -> bool:
        """True unless the captured pixels equal the previous step's (then ``unchanged`` gives the frame)."""
        self.index += 1
        # CRC-32 is the cheapest full pass over the pixels the standard library has (it releases the GIL);
        # a change it misses (one in 2**32) lasts until the screen changes again.
        digest = zlib.crc32(memoryview(capture.array).cast("B"))
        same = digest == self._digest and self._result is not None
        self._digest = digest
        return not same

    def options(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The OCR options of a step: with a stream, the service reads only what changed since the last
        step it read and says which lines came and went (``delta``); the first step is a keyframe."""
        if self.stream is None:
            return fields
        return {**fields, "stream": self.stream, "delta": True, "keyframe": self._result is None}

    def unchanged(self, capture: Capture) -> WatchFrame:
        assert self._result is not None
        return WatchFrame(self.index, False, self._result, capture=capture.method, stream=self.stream,
                          warnings=capture.warnings)  # fmt: skip

    def read(self, capture: Capture, result: OcrResult) -> WatchFrame:
        """The frame for a capture that was OCRed; the first frame reports every line as added."""
        info = result.stream
        if info is not None and info.added is not None and info.removed is not None:
            added, removed = list(info.added), list(info.removed)  # the service's own account of the change
        else:
            before = self._result.lines if self._result is not None else []
            added, removed = diff_lines(before, result.lines)
        self._result = result
        return WatchFrame(self.index, bool(added or removed) or self.index == 0, result, added, removed,
                          capture.method, self.stream, tuple(result.warnings))  # fmt: skip

    def delay(self) -> float:
        """Seconds to wait before the next capture: at most one capture per ``interval``, never a burst to
        catch up after a slow OCR."""
        now = time.monotonic()
        if self.index < 0:
            self._next_due = now
            return 0.0
        self._next_due = max(self._next_due + self.interval, now)
        return self._next_due - now
