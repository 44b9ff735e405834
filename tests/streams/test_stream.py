"""A stream read by the real rapidocr engine on drawn pages: unchanged frames, a changed word, a scroll
and the keyframe rules, each compared with a full read of the same frame by the same engine."""

from __future__ import annotations

import numpy as np
import pytest

from shmbridge.streams import Stream, StreamPolicy

from .conftest import LINE_HEIGHT, WORDS, Recognize, full_read, page, texts

pytestmark = pytest.mark.timeout(600)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_unchanged_frame_is_the_full_read_and_reads_nothing(recognize: Recognize) -> None:
    frame = page(WORDS[:5])
    stream = Stream("screen")
    first = stream.read(frame, recognize)
    assert first.info.keyframe and first.info.reason == "first" and first.info.frame == 0
    assert texts(first.lines) == texts(full_read(recognize, frame)) == WORDS[:5]
    again = stream.read(frame.copy(), recognize)
    info = again.info
    assert (info.keyframe, info.frame, info.changed_tiles, info.rects, info.read_lines) == (False, 1, 0, [], 0)
    assert info.reused_lines == 5 and info.new_lines == info.removed_lines == 0
    assert again.lines == first.lines


def test_a_changed_word_is_read_again_and_its_neighbours_reused(recognize: Recognize) -> None:
    before = WORDS[:5]
    after = [*before[:2], "Network status offline", *before[3:]]
    stream = Stream("screen")
    stream.read(page(before), recognize)
    frame = page(after)
    step = stream.read(frame, recognize, delta=True)
    info = step.info
    assert not info.keyframe and 0 < info.changed_tiles < info.tiles // 4
    assert (info.reused_lines, info.read_lines, info.new_lines, info.removed_lines) == (4, 1, 1, 1)
    changed_top = 12 + 2 * LINE_HEIGHT
    assert all(rect.y < changed_top + LINE_HEIGHT and rect.y + rect.height > changed_top for rect in info.rects)
    assert texts(step.lines) == texts(full_read(recognize, frame)) == after
    assert texts(info.added or []) == ["Network status offline"]
    assert texts(info.removed or []) == ["Network status connected"]


def test_a_scrolled_frame_moves_the_lines_and_reads_only_the_new_band(recognize: Recognize) -> None:
    tall = page(WORDS, height=12 + LINE_HEIGHT * len(WORDS) + 12)
    window = 12 + LINE_HEIGHT * 10
    moved = 2 * LINE_HEIGHT
    stream = Stream("screen")
    stream.read(tall[:window], recognize)
    frame = tall[moved : moved + window]
    step = stream.read(frame, recognize)
    info = step.info
    assert info.scroll == -moved and not info.keyframe
    read_area = sum(rect.width * rect.height for rect in info.rects)
    assert read_area < 0.35 * frame.shape[0] * frame.shape[1]
    assert info.reused_lines >= 7
    assert texts(step.lines) == texts(full_read(recognize, frame)) == WORDS[2:12]
    boxes = {line.text: line.box for line in step.lines}
    assert boxes[WORDS[2]].y == pytest.approx(12 + 4, abs=3)  # moved up with the content


def test_keyframe_rules(recognize: Recognize) -> None:
    clock = FakeClock()
    stream = Stream("screen", StreamPolicy(keyframe_frames=3, keyframe_seconds=10.0, keyframe_area=0.25), clock=clock)
    frame = page(WORDS[:2])

    def reason(image: np.ndarray = frame, **kwargs: object) -> str | None:
        clock.now += 1.0
        return stream.read(image, recognize, **kwargs).info.reason  # type: ignore[arg-type]

    assert reason() == "first"
    assert [reason(), reason()] == [None, None]
    assert reason() == "frames"  # the third frame since the last keyframe
    clock.now += 10.0
    assert reason() == "seconds"
    assert reason(keyframe=True) == "requested"
    assert reason(settings=("bgr",)) == "options"
    assert reason(settings=("bgr",)) is None
    assert reason(page(WORDS[:3]), settings=("bgr",)) == "size"
    assert reason(page(WORDS[5:8]), settings=("bgr",)) == "area"  # every line changed
