"""When a stream reads the whole frame (a keyframe) instead of only what changed, and its tunables.

It owns ``StreamPolicy`` (every number a stream uses, validated once) and ``keyframe_reason``, the one
place that decides a keyframe. Staleness is bounded here: whatever the change detection believes, a
full read happens at least every ``keyframe_frames`` frames and every ``keyframe_seconds`` seconds.

What it must never do: look at pixels or lines. The defaults are chosen by measurement on the fixture
sequences (docs/benchmarks.md, "Screen streams"); the reasons are kept there, not here.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass

from .fingerprint import DEFAULT_IGNORE_BITS, DEFAULT_TILE


class KeyframeReason(enum.StrEnum):
    FIRST = "first"
    SIZE = "size"
    OPTIONS = "options"
    AREA = "area"
    FRAMES = "frames"
    SECONDS = "seconds"
    REQUESTED = "requested"
    UNSETTLED = "unsettled"  # the rectangles did not settle over the lines within the rounds allowed


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """The tunables of change detection and of the keyframe rules."""

    tile: int = DEFAULT_TILE
    #: Low bits of each byte that fingerprints leave out (repainting noise, see ``fingerprint``).
    ignore_bits: int = DEFAULT_IGNORE_BITS
    #: Pixels added around each group of changed tiles, so the engine sees the text's surroundings.
    margin: int = 8
    #: Each rectangle's edges move out, at most this far, to a quiet row or column (background: all its
    #: values within ``quiet_tolerance`` of each other), so no line the cache lacks is cut in two.
    quiet_reach: int = 48
    quiet_tolerance: int = 24
    #: Rectangles closer than this many pixels up or down, or ``merge_gap_x`` sideways, are read as one.
    merge_gap: int = 16
    merge_gap_x: int = 96
    #: At most this many crops per frame (each costs the engine a fixed overhead).
    max_rects: int = 6
    #: Rounds of growing rectangles over cached lines, and of growing them past a line read across an edge.
    cover_rounds: int = 8
    edge_rounds: int = 2
    #: A keyframe when the rectangles to read cover more than this fraction of the frame.
    keyframe_area: float = 0.25
    #: A keyframe after this many frames or seconds since the last one (0 turns a rule off).
    keyframe_frames: int = 100
    keyframe_seconds: float = 60.0
    #: Detect vertical scrolling and move cached lines instead of reading them again.
    scroll: bool = True

    def __post_init__(self) -> None:
        if not 8 <= self.tile <= 256 or self.tile % 8:
            raise ValueError(f"tile must be a multiple of 8 from 8 to 256, not {self.tile}")
        if not 0 <= self.ignore_bits <= 6:
            raise ValueError(f"ignore_bits is 0 to 6, not {self.ignore_bits}")
        if self.quiet_reach < 0 or not 0 <= self.quiet_tolerance <= 255:
            raise ValueError("quiet_reach cannot be negative, and quiet_tolerance is 0 to 255")
        if self.margin < 0 or self.merge_gap < 0 or self.merge_gap_x < 0:
            raise ValueError("margin and merge_gap cannot be negative")
        if self.max_rects < 1 or self.cover_rounds < 1 or self.edge_rounds < 0:
            raise ValueError("max_rects and cover_rounds are at least 1, edge_rounds at least 0")
        if not 0.0 < self.keyframe_area <= 1.0:
            raise ValueError(f"keyframe_area is a fraction in (0, 1], not {self.keyframe_area}")
        if self.keyframe_frames < 0 or self.keyframe_seconds < 0:
            raise ValueError("keyframe_frames and keyframe_seconds cannot be negative (0 turns them off)")


@dataclass(frozen=True, slots=True)
class FrameKey:
    """What must stay the same between two frames for the second to be read as a change of the first."""

    shape: tuple[int, ...]
    settings: Hashable


def keyframe_reason(
    policy: StreamPolicy,
    *,
    previous: FrameKey | None,
    current: FrameKey,
    frames_since: int,
    seconds_since: float,
    requested: bool,
) -> KeyframeReason | None:
    """Why this frame must be read whole, or None when reading its changes is enough. The area rule
    is decided later, once the rectangles are known."""
    if previous is None:
        return KeyframeReason.FIRST
    if requested:
        return KeyframeReason.REQUESTED
    if current.shape != previous.shape:
        return KeyframeReason.SIZE
    if current.settings != previous.settings:
        return KeyframeReason.OPTIONS
    if policy.keyframe_frames and frames_since >= policy.keyframe_frames:
        return KeyframeReason.FRAMES
    if policy.keyframe_seconds and seconds_since >= policy.keyframe_seconds:
        return KeyframeReason.SECONDS
    return None
