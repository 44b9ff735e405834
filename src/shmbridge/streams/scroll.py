"""Vertical scrolling: find how far the content moved, and which cached lines moved with it.

It owns the shift estimate (row fingerprints matched between two frames, one vote per distinctive row
of every changed tile column) and the sorting of cached lines into moved, kept and dropped. Once the
shift is known, a changed tile whose fingerprint equals the previous frame's content moved by that shift
is explained and is not read again; only the newly exposed band and whatever really changed are.

What it must never do: look at pixels (it sees fingerprints only) or decide anything about keyframes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..engines.results import make_line
from ..models import TextLine
from .fingerprint import Fingerprints, shifted_rows, shifted_tiles
from .lines import unique
from .regions import Rect

#: Fewer matching rows than this (over all columns) is not a scroll but a coincidence.
MIN_VOTES = 24
#: A shift counts only if it explains at least this fraction of the changed tiles.
MIN_EXPLAINED = 0.5
#: Tiles pad a line's box by this much before its tiles are looked up (anti-aliasing reaches past the ink).
_PAD = 1


@dataclass(frozen=True, slots=True)
class Shift:
    """The content moved down by ``rows`` (negative: up); ``matches`` marks the tiles that equal the
    previous frame's content moved by that much."""

    rows: int
    matches: np.ndarray
    #: The previous frame's row fingerprints moved by ``rows`` (what each row should now hold).
    rows_after: np.ndarray
    #: Which rows ``rows_after`` knows (the others were outside the previous frame).
    rows_known: np.ndarray


@dataclass(slots=True)
class MovedLines:
    """Cached lines after a shift: at their new place, or still where they were; the rest are gone."""

    lines: list[TextLine]
    dropped: list[TextLine]
    #: Tiles to read because a line was dropped there (cut by the frame's edge after the move).
    dirty: np.ndarray


def detect_shift(previous: Fingerprints, current: Fingerprints, changed: np.ndarray) -> Shift | None:
    """The vertical shift most changed columns agree on, or None when the change is not a scroll."""
    columns = np.flatnonzero(changed.any(axis=0))
    height = previous.shape[0]
    votes = np.zeros(2 * height + 1, dtype=np.int64)
    for column in columns:
        before, after = previous.rows[:, column], current.rows[:, column]
        values, first, counts = np.unique(before, return_index=True, return_counts=True)
        distinctive = values[counts == 1]  # a blank or repeated row says nothing about where it went
        if distinctive.size == 0:
            continue
        where = np.searchsorted(distinctive, after).clip(0, distinctive.size - 1)
        hit = np.flatnonzero(distinctive[where] == after)
        if hit.size == 0:
            continue
        source = first[counts == 1][where[hit]]
        np.add.at(votes, hit - source + height, 1)
    votes[height] = 0  # rows that did not move are unchanged tiles' business
    best = int(votes.argmax())
    if votes[best] < MIN_VOTES:
        return None
    rows = best - height
    moved, covered = shifted_tiles(previous, rows)
    matches = (current.tiles == moved) & covered[:, None]
    if (matches & changed).sum() < MIN_EXPLAINED * changed.sum():
        return None  # a few rows that match by chance (repeated code lines) do not make a scroll
    rows_after, rows_known = shifted_rows(previous, rows)
    return Shift(rows=rows, matches=matches, rows_after=rows_after, rows_known=rows_known)


def move_lines(lines: Sequence[TextLine], shift: Shift, previous: Fingerprints, current: Fingerprints) -> MovedLines:
    """Keep each cached line whose rows did not change; move one whose rows now hold, at the shifted
    place, exactly what they held before; drop the rest. Row fingerprints make this exact to the row
    (tiles would drag a neighbouring line's tile in)."""
    height, width = current.shape[0], current.shape[1]
    tile = current.tile
    kept: list[TextLine] = []
    dropped: list[TextLine] = []
    dirty = np.zeros(current.grid, dtype=bool)
    for line in lines:
        here = Rect.around(line.box, _PAD).clipped(height, width)
        if here.area and _rows_equal(previous.rows, current, here, tile):
            kept.append(line)
            continue
        target = Rect.around(line.box, _PAD).grown(0, -shift.rows, 0, shift.rows)
        inside = target.y0 >= 0 and target.y1 <= height and target.clipped(height, width).area > 0
        if inside and _rows_equal(shift.rows_after, current, target.clipped(height, width), tile):
            kept.append(make_line(line.text, line.confidence, line.quad, 0.0, float(shift.rows)))
            continue
        dropped.append(line)
        visible = Rect.around(line.box).grown(0, -shift.rows, 0, shift.rows).clipped(height, width)
        there = _tiles(visible, tile, height, width)
        if there is not None and (visible.y1 - visible.y0) * 3 >= line.box.height:
            dirty[there] = True  # enough of it is still in sight to be read
    return MovedLines(lines=unique(kept), dropped=dropped, dirty=dirty)


def _rows_equal(reference: np.ndarray, current: Fingerprints, rect: Rect, tile: int) -> bool:
    columns = slice(rect.x0 // tile, (rect.x1 - 1) // tile + 1)
    return bool((reference[rect.y0 : rect.y1, columns] == current.rows[rect.y0 : rect.y1, columns]).all())


def _tiles(rect: Rect, tile: int, height: int, width: int) -> tuple[slice, slice] | None:
    clipped = rect.clipped(height, width)
    if clipped.area == 0:
        return None
    return (
        slice(clipped.y0 // tile, (clipped.y1 - 1) // tile + 1),
        slice(clipped.x0 // tile, (clipped.x1 - 1) // tile + 1),
    )
