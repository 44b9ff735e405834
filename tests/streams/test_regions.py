"""Rectangles from changed tiles: grouping, merging, growing over lines until settled, and past a cut edge."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shmbridge.streams.regions import Rect, cover_lines, cut_edges, merge, padded_lines, past_cuts, tile_groups

rects = st.builds(
    lambda x, y, w, h: Rect(x, y, x + w, y + h),
    st.integers(0, 600), st.integers(0, 400), st.integers(1, 200), st.integers(1, 60),
)  # fmt: skip


def test_tile_groups_are_connected_components() -> None:
    mask = np.zeros((4, 6), dtype=bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one group
    mask[3, 5] = True  # the last column and row are partial tiles
    assert sorted(tile_groups(mask, 32, 100, 180), key=lambda r: r.x0) == [Rect(0, 0, 64, 64), Rect(160, 96, 180, 100)]


@settings(max_examples=60, deadline=None)
@given(st.lists(rects, min_size=1, max_size=12), st.lists(rects, max_size=20), st.integers(1, 5))
def test_settled_rectangles_hold_every_line_they_touch(changed: list[Rect], lines: list[Rect], limit: int) -> None:
    lines = [line.clipped(480, 800) for line in lines if line.clipped(480, 800).area]
    result, settled = cover_lines(
        changed, lines, height=480, width=800, gap=8, gap_x=40, limit=limit, rounds=len(lines) + 2, pad=3
    )
    assert settled and 1 <= len(result) <= limit
    for rect in changed:
        assert any(out.contains(rect.clipped(480, 800)) for out in result)
    for line, padded in zip(lines, padded_lines(lines, 3, height=480, width=800), strict=True):
        assert all(out.contains(padded) or not out.intersects(line) for out in result)
    for i, a in enumerate(result):
        assert not any(a.near(b, 8, 40) for b in result[i + 1 :])


@settings(max_examples=60, deadline=None)
@given(st.lists(rects, max_size=20))
def test_padding_stops_halfway_to_a_neighbour(lines: list[Rect]) -> None:
    lines = [line.clipped(480, 800) for line in lines if line.clipped(480, 800).area]
    padded = padded_lines(lines, 4, height=480, width=800)
    for i, (line, around) in enumerate(zip(lines, padded, strict=True)):
        assert around.contains(line) and line.grown(4, 4, 4, 4).clipped(480, 800).contains(around)
        for j, other in enumerate(lines):
            if j != i and not other.intersects(line):
                assert not around.intersects(other), (line, around, other)


def test_a_diagonal_neighbour_stays_outside_the_padding() -> None:
    lines = [Rect(0, 0, 10, 10), Rect(12, 12, 20, 20)]
    first, second = padded_lines(lines, 4, height=100, width=100)
    assert not first.intersects(lines[1]) and not second.intersects(lines[0])


def test_covering_one_line_of_a_tight_paragraph_leaves_its_neighbours() -> None:
    """Lines 3 px apart (a code block): a change on the middle line reads that line, not the block."""
    paragraph = [Rect(50, 100 + 18 * k, 600, 115 + 18 * k) for k in range(10)]
    changed = [Rect(40, 172, 70, 185)]  # on line 4 (y 172-187) alone
    result, settled = cover_lines(changed, paragraph, height=480, width=800, gap=0, limit=6, rounds=8, pad=4)
    assert settled and len(result) == 1
    (rect,) = result
    assert rect.contains(paragraph[4]) and not rect.intersects(paragraph[3]) and not rect.intersects(paragraph[5])
    assert rect.y0 == 172 - 1 and rect.y1 == 187 + 1  # halfway into the 3 px gaps


def test_merge_keeps_far_rectangles_apart_within_the_limit() -> None:
    far = [Rect(0, 0, 10, 10), Rect(500, 0, 510, 10), Rect(0, 300, 10, 310)]
    assert len(merge(far, 16, 6)) == 3
    assert len(merge(far, 16, 2)) == 2
    assert merge([Rect(0, 0, 10, 10), Rect(20, 0, 30, 10)], 16, 6) == [Rect(0, 0, 30, 10)]


def test_a_line_at_an_inner_edge_is_cut_and_one_at_the_frame_edge_is_not() -> None:
    rect = Rect(100, 100, 300, 140)
    assert cut_edges(rect, Rect(150, 110, 299, 130), height=480, width=800, slack=2) == (0, 0, 1, 0)
    assert cut_edges(Rect(0, 100, 800, 140), Rect(0, 110, 800, 130), height=480, width=800, slack=2) == (0, 0, 0, 0)


def test_a_rectangle_grows_past_the_edge_a_line_was_cut_at() -> None:
    rect = Rect(100, 100, 300, 140)
    cut = Rect(150, 110, 299, 130)  # 20 px high, reaching the right edge
    assert past_cuts(rect, [cut], height=480, width=800, slack=2, step=32) == Rect(100, 100, 380, 140)
    assert past_cuts(rect, [Rect(150, 110, 250, 130)], height=480, width=800, slack=2, step=32) == rect
    assert past_cuts(rect, [Rect(101, 101, 299, 139)], height=480, width=320, slack=2, step=32) == Rect(0, 62, 320, 178)
