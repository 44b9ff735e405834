"""Where a rectangle may end (``streams.edges``): background rows of several colours, and edges sealed by them."""

from __future__ import annotations

import numpy as np

from shmbridge.streams.edges import quiet_edges, sealed
from shmbridge.streams.regions import Rect


def _page() -> np.ndarray:
    """A white page, a grey sidebar (x < 40) with a dark border at x 40, a green code block from x 60, and
    two lines of "text" (dense vertical strokes) at rows 50-62 and 66-78 across the block."""
    frame = np.full((120, 400, 3), 255, np.uint8)
    frame[:, :40] = (230, 230, 230)
    frame[:, 40] = (90, 90, 90)
    frame[:, 60:] = (204, 255, 238)
    for top in (50, 66):
        frame[top : top + 12, 70:380:4] = (20, 20, 20)  # a stroke every 4 px: text
    return frame


def test_a_row_across_three_backgrounds_is_quiet_and_a_row_of_text_is_not() -> None:
    frame = _page()
    # Row 63 (between the lines) crosses sidebar, border and block: background; row 66 is the second line.
    assert sealed(frame, Rect(10, 64, 390, 66), tolerance=24) == (True, False)
    # The first line (rows 50-61) read whole: rows 49 and 62 are background, so it continues past neither edge.
    assert sealed(frame, Rect(10, 50, 390, 62), tolerance=24) == (True, True)
    # An edge inside a line: the row outside crosses its strokes.
    assert sealed(frame, Rect(10, 56, 390, 90), tolerance=24) == (False, True)
    assert sealed(frame, Rect(10, 0, 390, 120), tolerance=24) == (True, True)  # the frame's own border


def test_an_edge_through_text_moves_out_to_background() -> None:
    frame = _page()
    moved = quiet_edges(frame, Rect(10, 56, 390, 72), reach=24, tolerance=24)  # cuts both lines
    assert moved.y0 <= 49 and moved.y1 >= 79  # past both lines, onto background rows
    assert moved.x0 <= 10 and moved.x1 >= 390
