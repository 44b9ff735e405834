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
from .fingerprint import Fingerprints, shifted_tiles
from .lines import unique
from .regions import Rect

#: Fewer matching rows than this (over all columns) is not a scroll but a coincidence.
MIN_VOTES = 24
#: Tiles pad a line's box by this much before its tiles are looked up (anti-aliasing reaches past the ink).
_PAD = 1


@dataclass(frozen=True, slots=True)
class Shift:
    """The content moved down by ``rows`` (negative: up); ``matches`` marks the tiles that equal the
    previous frame's content moved by that much."""

    rows: int
    matches: np.ndarray


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
    if not (matches & changed).any():
        return None
    return Shift(rows=rows, matches=matches)


def move_lines(
    lines: Sequence[TextLine], shift: Shift, changed: np.ndarray, tile: int, height: int, width: int
) -> MovedLines:
    """Move each cached line whose tiles changed to where the shift put it, if every tile there matches
    the moved content; keep lines whose tiles did not change; drop the rest."""
    kept: list[TextLine] = []
    dropped: list[TextLine] = []
    dirty = np.zeros_like(changed)
    for line in lines:
        here = _tiles(Rect.around(line.box, _PAD), tile, height, width)
        if here is not None and not changed[here].any():
            kept.append(line)
            continue
        target = Rect.around(line.box, _PAD).grown(0, -shift.rows, 0, shift.rows)
        there = _tiles(target, tile, height, width)
        inside = target.y0 >= 0 and target.y1 <= height
        if there is not None and inside and shift.matches[there].all():
            kept.append(make_line(line.text, line.confidence, line.quad, 0.0, float(shift.rows)))
            continue
        dropped.append(line)
        if there is not None:
            dirty[there] = True
    return MovedLines(lines=unique(kept), dropped=dropped, dirty=dirty)


def _tiles(rect: Rect, tile: int, height: int, width: int) -> tuple[slice, slice] | None:
    clipped = rect.clipped(height, width)
    if clipped.area == 0:
        return None
    return (
        slice(clipped.y0 // tile, (clipped.y1 - 1) // tile + 1),
        slice(clipped.x0 // tile, (clipped.x1 - 1) // tile + 1),
    )
