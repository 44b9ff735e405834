"""The pure parts of ``watch``: the line diff, the change gate and the pacing (no X, no service)."""

from __future__ import annotations

import numpy as np
import pytest

from shmbridge.capture import Capture, Watcher, diff_lines
from shmbridge.models import Box, OcrResult, Roi, TextLine


def line(text: str, x: float, y: float, width: float = 200, height: float = 20) -> TextLine:
    quad = ((x, y), (x + width, y), (x + width, y + height), (x, y + height))
    return TextLine(text=text, confidence=0.9, box=Box(x=x, y=y, width=width, height=height), quad=quad)


def test_unchanged_lines_match_despite_a_pixel_of_jitter() -> None:
    before = [line("File saved", 10, 10), line("Ready", 10, 40)]
    after = [line("File saved", 11, 9, 199), line("Ready", 10, 41), line("3 warnings", 10, 70)]
    added, removed = diff_lines(before, after)
    assert [item.text for item in added] == ["3 warnings"] and removed == []


def test_moved_or_edited_lines_are_removed_and_added() -> None:
    before = [line("Total: 10", 10, 10), line("OK", 300, 300)]
    after = [line("Total: 11", 10, 10), line("OK", 300, 600)]
    added, removed = diff_lines(before, after)
    assert [item.text for item in added] == ["Total: 11", "OK"]
    assert [(item.text, item.box.y) for item in removed] == [("Total: 10", 10), ("OK", 300)]


def test_identical_lines_in_two_places_count_twice() -> None:
    before = [line("Delete", 10, 10)]
    after = [line("Delete", 10, 10), line("Delete", 10, 200)]
    added, removed = diff_lines(before, after)
    assert [(item.text, item.box.y) for item in added] == [("Delete", 200)] and removed == []


def _capture(fill: int) -> Capture:
    return Capture(np.full((4, 6, 4), fill, np.uint8), Roi(x=0, y=0, width=6, height=4), "shared_memory")


def test_the_gate_asks_for_ocr_only_when_pixels_change() -> None:
    watcher = Watcher(0.0, stream="screen")
    first = _capture(1)
    assert watcher.needs_ocr(first)
    step = watcher.read(first, OcrResult(lines=[line("a", 0, 0)]))
    assert step.index == 0 and step.changed and [item.text for item in step.added] == ["a"]
    assert not watcher.needs_ocr(_capture(1))
    still = watcher.unchanged(_capture(1))
    assert still.index == 1 and not still.changed and still.added == [] and still.result.lines[0].text == "a"
    assert watcher.needs_ocr(_capture(2))
    same_text = watcher.read(_capture(2), OcrResult(lines=[line("a", 0, 0)]))
    assert not same_text.changed  # pixels changed, text did not: nothing to report


def test_pacing_is_one_capture_per_interval_and_never_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("shmbridge.capture.watch.time.monotonic", lambda: clock[0])
    watcher = Watcher(2.0)
    assert watcher.delay() == 0.0  # the first capture at once
    watcher.index = 0
    clock[0] = 100.5
    assert watcher.delay() == pytest.approx(1.5)
    clock[0] = 109.0  # a slow OCR overran several intervals: the next capture at once, then every 2 s
    assert watcher.delay() == 0.0
    assert watcher.delay() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        Watcher(-1.0)
