"""Turn an engine's raw detections into ordered ``TextLine`` objects.

Engines report quadrilaterals in their own order; users read top to bottom, left to right. Lines whose
vertical centres lie within half a line height of each other are one visual row and are ordered by x.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..models import Box, TextLine

Quad = Sequence[Sequence[float]]


def quad_to_box(quad: Quad) -> Box:
    """The axis-aligned bounding box of four corner points."""
    xs = [float(p[0]) for p in quad]
    ys = [float(p[1]) for p in quad]
    return Box(x=min(xs), y=min(ys), width=max(xs) - min(xs), height=max(ys) - min(ys))


def make_line(text: str, confidence: float, quad: Quad, dx: float = 0.0, dy: float = 0.0) -> TextLine:
    """A line from a quad, shifted by (dx, dy) into frame coordinates."""
    shifted = tuple((float(p[0]) + dx, float(p[1]) + dy) for p in quad)
    return TextLine(text=text, confidence=float(confidence), box=quad_to_box(shifted), quad=shifted)


def reading_order(lines: Iterable[TextLine]) -> list[TextLine]:
    """Sort lines top-to-bottom, then left-to-right within a visual row."""
    pending = sorted(lines, key=lambda line: line.box.y + line.box.height / 2)
    rows: list[list[TextLine]] = []
    for line in pending:
        centre = line.box.y + line.box.height / 2
        if rows:
            last = rows[-1]
            ref = last[0]
            ref_centre = ref.box.y + ref.box.height / 2
            if abs(centre - ref_centre) <= max(4.0, 0.5 * min(ref.box.height, line.box.height)):
                last.append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda item: item.box.x)]


def shift_lines(lines: Iterable[TextLine], dx: float, dy: float) -> list[TextLine]:
    """Move lines found in a cropped view back into full-frame coordinates."""
    if dx == 0 and dy == 0:
        return list(lines)
    return [make_line(line.text, line.confidence, line.quad, dx, dy) for line in lines]
