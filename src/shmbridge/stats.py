"""The one percentile definition of the project: nearest rank, for the metrics and every benchmark.

It owns ``percentile``; it must never sort for the caller (callers keep their samples sorted once).
"""

from __future__ import annotations

import math


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..1): the smallest value with at
    least ``q`` of the samples at or below it."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(len(ordered), rank) - 1]
