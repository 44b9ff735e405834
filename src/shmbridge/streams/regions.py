"""Rectangles to read again: changed tiles grown over the cached lines they touch, merged into a few.

It owns the geometry between a mask of changed tiles and the crops handed to an engine: connected
groups of tiles become rectangles, each grows by a margin and over every cached line it touches (a
changed character changes its whole line), and rectangles that touch or lie close are merged. Each
rectangle is then either read whole or not at all, so a cached line is never half replaced.

What it must never do: look at pixels or call an engine; it works on boxes only. Every loop is bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..models import Box, Roi


@dataclass(frozen=True, slots=True)
class Rect:
    """A half-open pixel rectangle [x0, x1) × [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def around(cls, box: Box, pad: int = 0) -> Rect:
        """The smallest integer rectangle holding ``box``, padded by ``pad`` pixels."""
        return cls(
            int(np.floor(box.x)) - pad,
            int(np.floor(box.y)) - pad,
            int(np.ceil(box.x + box.width)) + pad,
            int(np.ceil(box.y + box.height)) + pad,
        )

    @property
    def area(self) -> int:
        return max(0, self.x1 - self.x0) * max(0, self.y1 - self.y0)

    def intersects(self, other: Rect) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def contains(self, other: Rect) -> bool:
        return self.x0 <= other.x0 and self.y0 <= other.y0 and self.x1 >= other.x1 and self.y1 >= other.y1

    def near(self, other: Rect, gap: int, gap_x: int | None = None) -> bool:
        """Closer than ``gap`` pixels up or down and ``gap_x`` (default ``gap``) sideways."""
        across = gap if gap_x is None else gap_x
        return (
            self.x0 - across < other.x1
            and other.x0 - across < self.x1
            and self.y0 - gap < other.y1
            and other.y0 - gap < self.y1
        )

    def union(self, other: Rect) -> Rect:
        return Rect(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def grown(self, left: int, top: int, right: int, bottom: int) -> Rect:
        return Rect(self.x0 - left, self.y0 - top, self.x1 + right, self.y1 + bottom)

    def clipped(self, height: int, width: int) -> Rect:
        return Rect(max(0, self.x0), max(0, self.y0), min(width, self.x1), min(height, self.y1))

    def roi(self) -> Roi:
        return Roi(x=self.x0, y=self.y0, width=self.x1 - self.x0, height=self.y1 - self.y0)


def tile_groups(mask: np.ndarray, tile: int, height: int, width: int) -> list[Rect]:
    """The pixel bounding box of each 8-connected group of set tiles in ``mask``."""
    rows, cols = mask.shape
    labels = -np.ones(mask.shape, dtype=np.int32)
    boxes: list[Rect] = []
    for start in zip(*(index.tolist() for index in np.nonzero(mask)), strict=True):
        if labels[start] >= 0:
            continue
        label = len(boxes)
        labels[start] = label
        pending = [start]
        r0, c0, r1, c1 = start[0], start[1], start[0], start[1]
        while pending:
            r, c = pending.pop()
            r0, c0, r1, c1 = min(r0, r), min(c0, c), max(r1, r), max(c1, c)
            for nr in range(max(0, r - 1), min(rows, r + 2)):
                for nc in range(max(0, c - 1), min(cols, c + 2)):
                    if mask[nr, nc] and labels[nr, nc] < 0:
                        labels[nr, nc] = label
                        pending.append((nr, nc))
        boxes.append(Rect(c0 * tile, r0 * tile, min(width, (c1 + 1) * tile), min(height, (r1 + 1) * tile)))
    return boxes


def merge(rects: Iterable[Rect], gap: int, limit: int, gap_x: int | None = None) -> list[Rect]:
    """Merge rectangles closer than ``gap`` pixels (``gap_x`` sideways: text on one row goes on past a
    blank tile, and a line cut in two is read twice and badly) until none are, then the pair whose
    union adds the least area until at most ``limit`` remain (each crop costs a fixed overhead)."""
    merged = list(rects)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                if merged[i].near(merged[j], gap, gap_x):
                    merged[i] = merged[i].union(merged.pop(j))
                    changed = True
                    break
            if changed:
                break
    while len(merged) > max(1, limit):
        best: tuple[int, int, int] | None = None
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                extra = merged[i].union(merged[j]).area - merged[i].area - merged[j].area
                if best is None or extra < best[0]:
                    best = (extra, i, j)
        assert best is not None
        _, i, j = best
        merged[i] = merged[i].union(merged.pop(j))
        return merge(merged, gap, limit, gap_x)  # a union can now lie near a third rectangle
    return merged


def cover_lines(
    rects: Sequence[Rect],
    lines: Sequence[Rect],
    *,
    height: int,
    width: int,
    gap: int,
    limit: int,
    rounds: int,
    gap_x: int | None = None,
    pad: int = 0,
) -> tuple[list[Rect], bool]:
    """Grow ``rects`` until every line box they touch lies inside one of them, with its padding
    (``padded_lines``); merge as they grow. Only a line's own box counts as touching, never its
    padding, and padding stops halfway to a neighbour, so growth does not run down a paragraph or a
    block of code whose lines lie closer than two pads.

    Returns the rectangles and whether they settled within ``rounds`` (if not, the caller reads the
    whole frame rather than cut a line in two).
    """
    padded = padded_lines(lines, pad, height=height, width=width)
    current = merge((rect.clipped(height, width) for rect in rects), gap, limit, gap_x)
    for _ in range(rounds):
        grown = []
        changed = False
        for rect in current:
            for line, around in zip(lines, padded, strict=True):
                if rect.intersects(line) and not rect.contains(around):
                    rect = rect.union(around)
                    changed = True
            grown.append(rect)
        current = merge(grown, gap, limit, gap_x)
        if not changed:
            return current, True
    return current, False


def padded_lines(lines: Sequence[Rect], pad: int, *, height: int, width: int) -> list[Rect]:
    """Each line box grown by ``pad`` on every side, but on each side at most halfway to the nearest
    other line that faces it there (one within ``pad`` of overlapping it across that side), and within
    the frame.

    A pad keeps a line's anti-aliasing inside the crop; stopping halfway keeps a neighbour's box out
    of it, so covering one line of a tight paragraph does not touch the next one. One vectorised pass
    over all pairs (a frame holds a few hundred lines at most).
    """
    if not lines:
        return []
    box = np.array([(line.x0, line.y0, line.x1, line.y1) for line in lines], dtype=np.int64)
    x0, y0, x1, y1 = (box[:, k] for k in range(4))
    # Facing: sharing columns (or rows) once padded, so a diagonal neighbour limits both sides it is near.
    across_x = (x0[:, None] - pad < x1[None, :]) & (x0[None, :] < x1[:, None] + pad)
    across_y = (y0[:, None] - pad < y1[None, :]) & (y0[None, :] < y1[:, None] + pad)
    np.fill_diagonal(across_x, False)
    np.fill_diagonal(across_y, False)
    far = np.int64(2 * pad)

    def room(gaps: np.ndarray, facing: np.ndarray) -> np.ndarray:
        """Per line, half the smallest non-negative gap to a facing line (capped at ``pad``)."""
        gaps = np.where(facing & (gaps >= 0), gaps, far)
        return np.minimum(gaps.min(axis=1) // 2, pad)

    top = room(y0[:, None] - y1[None, :], across_x)
    bottom = room(y0[None, :] - y1[:, None], across_x)
    left = room(x0[:, None] - x1[None, :], across_y)
    right = room(x0[None, :] - x1[:, None], across_y)
    return [
        line.grown(int(left[i]), int(top[i]), int(right[i]), int(bottom[i])).clipped(height, width)
        for i, line in enumerate(lines)
    ]


def cut_edges(rect: Rect, line: Rect, *, height: int, width: int, slack: int) -> tuple[int, int, int, int]:
    """Which edges of ``rect`` a line read inside it reaches (within ``slack`` pixels) where the frame
    goes on: the text may continue past them. Returns (left, top, right, bottom) as 0/1 flags."""
    return (
        int(rect.x0 > 0 and line.x0 - rect.x0 <= slack),
        int(rect.y0 > 0 and line.y0 - rect.y0 <= slack),
        int(rect.x1 < width and rect.x1 - line.x1 <= slack),
        int(rect.y1 < height and rect.y1 - line.y1 <= slack),
    )


def past_cuts(rect: Rect, lines: Sequence[Rect], *, height: int, width: int, slack: int, step: int) -> Rect:
    """``rect`` grown past each inner edge that a line read inside it reaches: sideways by four line
    heights (the words go on), up or down by one line height; at least half a ``step`` either way."""
    left = top = right = bottom = 0
    for line in lines:
        cut_left, cut_top, cut_right, cut_bottom = cut_edges(rect, line, height=height, width=width, slack=slack)
        size = max(step // 2, line.y1 - line.y0)
        left, right = max(left, cut_left * 4 * size), max(right, cut_right * 4 * size)
        top, bottom = max(top, cut_top * size), max(bottom, cut_bottom * size)
    return rect.grown(left, top, right, bottom).clipped(height, width)
