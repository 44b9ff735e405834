"""Where a rectangle to read again may end: on a quiet row or column, never through a line of text.

Changed tiles are cut down to the rows that changed, and then grown over the cached lines they touch.
Text the cache does not hold (a line the previous read missed, or one that moved in with a scroll) can
still lie across a rectangle's edge, and a crop that cuts it in half reads as nothing. So each edge moves
outwards, within a reach, to the nearest row (or column) that is background across the rectangle: one
that, walked along, jumps by more than a tolerance only a few times (at a panel's edges or a border),
where a line of text jumps at every stroke. Backgrounds of several colours side by side (a page, a
sidebar, a code block) are still background.

What it must never do: write to the frame or keep it; move an edge inwards or further than its reach.
It reads only the bands just outside the rectangle.
"""

from __future__ import annotations

import numpy as np

from .regions import Rect

#: How many jumps a row may make while it still counts as background: the edges of a few panels and
#: borders side by side, not a line of text (each glyph it crosses makes two).
_JUMPS = 6
#: Quiet lines kept around text at a moved edge.
_CONTEXT = 6


def quiet_edges(frame: np.ndarray, rect: Rect, *, reach: int, tolerance: int) -> Rect:
    """``rect`` (inside the frame) with each edge moved out to the nearest quiet row or column within
    ``reach`` pixels, that line included; an edge already next to a quiet line stays, and one with none
    in reach moves the whole reach (the frame's border stops it). Rows first, then columns over the new
    rows."""
    height, width = frame.shape[0], frame.shape[1]
    x0, y0, x1, y1 = rect.x0, rect.y0, rect.x1, rect.y1
    top = _before(y0, _quiet(frame[max(0, y0 - reach) : y0, x0:x1], 0, tolerance))
    bottom = _after(y1, _quiet(frame[y1 : min(height, y1 + reach), x0:x1], 0, tolerance))
    left = _before(x0, _quiet(frame[top:bottom, max(0, x0 - reach) : x0], 1, tolerance))
    right = _after(x1, _quiet(frame[top:bottom, x1 : min(width, x1 + reach)], 1, tolerance))
    return Rect(left, top, right, bottom)


def sealed(frame: np.ndarray, rect: Rect, *, tolerance: int) -> tuple[bool, bool]:
    """Whether the row just above ``rect`` and the row just below it are background (or the frame ends
    there): no glyph crosses them, so no line read inside continues past that edge."""
    height = frame.shape[0]
    above = rect.y0 == 0 or bool(_quiet(frame[rect.y0 - 1 : rect.y0, rect.x0 : rect.x1], 0, tolerance)[0])
    below = rect.y1 >= height or bool(_quiet(frame[rect.y1 : rect.y1 + 1, rect.x0 : rect.x1], 0, tolerance)[0])
    return above, below


def _quiet(band: np.ndarray, axis: int, tolerance: int) -> np.ndarray:
    """For each row (``axis=0``) or column (``axis=1``) of ``band``: whether it is background, that is
    its value (the brightest channel) jumps by more than ``tolerance`` between neighbours at most
    ``_JUMPS`` times."""
    if band.size == 0:
        return np.zeros(band.shape[axis], bool)
    lines = band if axis == 0 else band.swapaxes(0, 1)
    values = lines.reshape(lines.shape[0], lines.shape[1], -1).max(axis=2).astype(np.int16)
    jumps = (np.abs(np.diff(values, axis=1)) > tolerance).sum(axis=1)
    return jumps <= _JUMPS


def _before(edge: int, quiet: np.ndarray) -> int:
    """A start edge moved back over ``quiet`` (the lines just before it, in frame order): to the nearest
    quiet line, and on through up to ``_CONTEXT`` quiet lines after it (the engine's detector misses a
    glyph that touches a crop's border). An edge next to a quiet line cuts no ink and stays."""
    if quiet.size == 0 or quiet[-1]:
        return edge  # it cuts no ink: it stays
    found = np.flatnonzero(quiet)
    if not found.size:
        return edge - quiet.size
    index = int(found[-1])
    stop = max(0, index - _CONTEXT)
    while index > stop and quiet[index - 1]:
        index -= 1
    return edge - quiet.size + index


def _after(edge: int, quiet: np.ndarray) -> int:
    """An end edge (exclusive) moved on over ``quiet`` (the lines just after it, in frame order), the
    mirror of ``_before``."""
    if quiet.size == 0 or quiet[0]:
        return edge
    found = np.flatnonzero(quiet)
    if not found.size:
        return edge + quiet.size
    index = int(found[0])
    stop = min(quiet.size - 1, index + _CONTEXT)
    while index < stop and quiet[index + 1]:
        index += 1
    return edge + index + 1
