"""Comparing cached and fresh lines: the same line, duplicates, and what was added or removed.

It owns the one notion of "the same line" a stream uses: equal text, and boxes overlapping by at least
half of the smaller one. What it must never do: read pixels or reorder lines (reading order belongs to
``engines.results``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..models import TextLine

#: Boxes overlapping by at least this fraction of the smaller one hold the same line.
SAME_OVERLAP = 0.5


def overlap(a: TextLine, b: TextLine) -> float:
    """Intersection over the smaller box."""
    width = min(a.box.x + a.box.width, b.box.x + b.box.width) - max(a.box.x, b.box.x)
    height = min(a.box.y + a.box.height, b.box.y + b.box.height) - max(a.box.y, b.box.y)
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min(a.box.width * a.box.height, b.box.width * b.box.height)
    return width * height / smaller if smaller > 0 else 1.0


def unique(lines: Sequence[TextLine]) -> list[TextLine]:
    """``lines`` without a line that lands on an earlier one with the same text."""
    kept: list[TextLine] = []
    by_text: dict[str, list[TextLine]] = defaultdict(list)
    for line in lines:
        if any(overlap(other, line) >= SAME_OVERLAP for other in by_text[line.text]):
            continue
        by_text[line.text].append(line)
        kept.append(line)
    return kept


def difference(before: Sequence[TextLine], after: Sequence[TextLine]) -> tuple[list[TextLine], list[TextLine]]:
    """The lines of ``after`` that are not in ``before`` and those of ``before`` not in ``after``."""
    unmatched: dict[str, list[TextLine]] = defaultdict(list)
    for line in before:
        unmatched[line.text].append(line)
    added: list[TextLine] = []
    for line in after:
        candidates = unmatched.get(line.text)
        match = next((old for old in candidates or () if overlap(old, line) >= SAME_OVERLAP), None)
        if match is None:
            added.append(line)
        else:
            candidates.remove(match)  # type: ignore[union-attr]
    removed = [line for line in before if any(line is old for old in unmatched[line.text])]
    return added, removed
