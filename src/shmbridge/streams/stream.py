"""One stream: a named sequence of frames of one size, read by what changed since the previous frame.

It owns a stream's state (the previous frame's fingerprints and lines, never its pixels) and one step:
fingerprint the frame, decide whether it is a keyframe, find the changed tiles (and a scroll), grow
them over the cached lines into a few rectangles, have the engine read only those, and merge the fresh
lines with the reused ones in reading order.

What it must never do: keep the frame or a crop of it after ``read`` returns, call an engine other
than through the ``Recognize`` callable it is given, or know about transports. A frame that fails
(the engine raised) leaves the state as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from ..engines.results import reading_order
from ..models import Roi, StreamInfo, TextLine
from .edges import quiet_edges, sealed
from .fingerprint import Fingerprints, changed_rows, changed_tiles, fingerprint
from .lines import difference, unique
from .policy import FrameKey, KeyframeReason, StreamPolicy, keyframe_reason
from .regions import Rect, cover_lines, past_cuts, tile_groups
from .scroll import detect_shift, move_lines

#: ``recognize(frame, roi)``: read the part ``roi`` of the frame; lines in frame coordinates.
Recognize = Callable[[np.ndarray, Roi], Sequence[TextLine]]

#: A line's box is padded by this much when rectangles grow over it (anti-aliasing reaches past the ink).
_LINE_PAD = 4
#: A line read within this many pixels of a rectangle's edge may continue past it (less than the pad,
#: so a cached line read again where it was is not taken for a cut one).
_EDGE_SLACK = 1
#: Bytes a cached line costs, over its text (the model, its box and quad).
_LINE_BYTES = 600


@dataclass(slots=True)
class StreamStep:
    """A stream's answer for one frame: every line of the frame, and what the stream did."""

    lines: list[TextLine]
    info: StreamInfo


class Stream:
    """The state of one stream and the reading of its frames, one at a time (a lock orders them)."""

    def __init__(
        self, name: str, policy: StreamPolicy | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.policy = policy or StreamPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._fingerprints: Fingerprints | None = None
        self._lines: list[TextLine] = []
        self._key: FrameKey | None = None
        self._frame = -1
        self._keyframe_frame = 0
        self._keyframe_time = 0.0
        self.last_used = clock()

    @property
    def frames(self) -> int:
        """Frames read so far."""
        return self._frame + 1

    @property
    def state_bytes(self) -> int:
        """What this stream keeps: its fingerprints and its lines."""
        fingerprints = self._fingerprints.nbytes if self._fingerprints is not None else 0
        return fingerprints + sum(_LINE_BYTES + len(line.text) for line in self._lines)

    def reset(self) -> None:
        """Forget the previous frame: the next one is a keyframe."""
        with self._lock:
            self._fingerprints, self._lines, self._key = None, [], None

    def read(
        self,
        frame: np.ndarray,
        recognize: Recognize,
        *,
        settings: Hashable = None,
        keyframe: bool = False,
        delta: bool = False,
    ) -> StreamStep:
        """Read ``frame`` (H×W×C or H×W uint8, read-only is fine) as the stream's next frame.

        ``settings`` are whatever changes the engine's reading (pixel format, options): a change forces a
        keyframe. ``keyframe`` asks for one; ``delta`` adds the lines added and removed to the info.
        """
        with self._lock:
            self.last_used = self._clock()
            step = self._read(frame, recognize, settings, keyframe, delta)
            self.last_used = self._clock()
            return step

    def _read(
        self, frame: np.ndarray, recognize: Recognize, settings: Hashable, requested: bool, delta: bool
    ) -> StreamStep:
        policy = self.policy
        started = time.perf_counter()
        current = fingerprint(frame, policy.tile, policy.ignore_bits)
        fingerprint_s = time.perf_counter() - started
        height, width = current.shape[0], current.shape[1]
        key = FrameKey(shape=tuple(frame.shape), settings=settings)
        now = self._clock()
        reason = keyframe_reason(
            policy,
            previous=self._key,
            current=key,
            frames_since=self._frame + 1 - self._keyframe_frame,
            seconds_since=now - self._keyframe_time,
            requested=requested,
        )
        reader = _TimedReader(frame, recognize)
        changed_count, shift_rows = 0, 0
        carried: list[TextLine] = []
        gone: list[TextLine] = []
        rects: list[Rect] = []
        if reason is None:
            assert self._fingerprints is not None
            changed = changed_tiles(self._fingerprints, current)
            changed_count = int(changed.sum())
            carried, dirty, reference, known = self._lines, changed, self._fingerprints.rows, None
            if changed_count and policy.scroll:
                shift = detect_shift(self._fingerprints, current, changed)
                if shift is not None:
                    moved = move_lines(carried, shift, self._fingerprints, current)
                    carried, gone, shift_rows = moved.lines, moved.dropped, shift.rows
                    dirty = (changed & ~shift.matches) | moved.dirty
                    reference, known = shift.rows_after, shift.rows_known
            rects, settled = self._rects(dirty, reference, known, current, carried)
            if settled and rects:
                rects, settled = self._to_quiet_edges(frame, rects, carried)
            if not settled:
                reason = KeyframeReason.UNSETTLED
            elif sum(rect.area for rect in rects) > policy.keyframe_area * height * width:
                reason = KeyframeReason.AREA
        if reason is not None:
            rects = [Rect(0, 0, width, height)]
            read = reading_order(reader.read(rects[0]))
            kept, replaced = [], self._lines
        else:
            rects, read = self._read_rects(reader, rects, carried, height, width) if rects else ([], [])
            kept, replaced = _split(carried, rects) if rects else (list(carried), [])
            replaced = replaced + gone
        if reason is None and not rects and not gone and not shift_rows:
            lines = self._lines  # nothing changed: already unique and in reading order
        else:
            lines = reading_order(unique([*kept, *read]))
        added, removed = difference(replaced, read)
        info = StreamInfo(
            name=self.name,
            frame=self._frame + 1,
            keyframe=reason is not None,
            reason=None if reason is None else reason.value,
            tiles=int(current.tiles.size),
            changed_tiles=int(current.tiles.size) if self._fingerprints is None else changed_count,
            scroll=shift_rows,
            rects=[rect.roi() for rect in rects],
            read_pixels=reader.pixels,
            reused_lines=len(kept),
            read_lines=len(read),
            new_lines=len(added),
            removed_lines=len(removed),
            added=added if delta else None,
            removed=removed if delta else None,
            fingerprint_ms=fingerprint_s * 1e3,
            engine_ms=reader.seconds * 1e3,
            merge_ms=(time.perf_counter() - started - fingerprint_s - reader.seconds) * 1e3,
        )
        self._fingerprints, self._lines, self._key = current, lines, key
        self._frame += 1
        if reason is not None:
            self._keyframe_frame, self._keyframe_time = self._frame, now
        return StreamStep(lines=lines, info=info)

    def _rects(
        self,
        dirty: np.ndarray,
        reference: np.ndarray,
        known: np.ndarray | None,
        current: Fingerprints,
        lines: Sequence[TextLine],
    ) -> tuple[list[Rect], bool]:
        """The changed tiles as a few rectangles, cut down to the rows that really changed (tiles are
        coarse; row fingerprints are exact), grown by the margin and over every line they touch."""
        policy = self.policy
        margin, tile = policy.margin, policy.tile
        height, width = current.shape[0], current.shape[1]
        groups = []
        for group in tile_groups(dirty, tile, height, width):
            columns = slice(group.x0 // tile, -(-group.x1 // tile))
            top, bottom = changed_rows(reference, current, group.y0, group.y1, columns, known)
            groups.append(Rect(group.x0, top, group.x1, bottom).grown(margin, margin, margin, margin))
        if not groups:
            return [], True
        return self._cover(groups, lines, height, width)

    def _to_quiet_edges(
        self, frame: np.ndarray, rects: list[Rect], lines: Sequence[TextLine]
    ) -> tuple[list[Rect], bool]:
        """Move each rectangle's edges out to background (``edges.quiet_edges``), then grow over the
        cached lines that reaches; two rounds at most, as growing may cross text again."""
        policy = self.policy
        height, width = frame.shape[0], frame.shape[1]
        for _ in range(2):
            moved = [quiet_edges(frame, rect, reach=policy.quiet_reach, tolerance=policy.quiet_tolerance)
                     for rect in rects]  # fmt: skip
            if moved == rects:
                break
            rects, settled = self._cover(moved, lines, height, width)
            if not settled:
                return rects, False
        return rects, True

    def _cover(self, rects: list[Rect], lines: Sequence[TextLine], height: int, width: int) -> tuple[list[Rect], bool]:
        """``cover_lines`` with this stream's policy over the boxes of ``lines``."""
        policy = self.policy
        return cover_lines(
            rects,
            [Rect.around(line.box) for line in lines],
            height=height,
            width=width,
            gap=policy.merge_gap,
            gap_x=policy.merge_gap_x,
            limit=policy.max_rects,
            rounds=policy.cover_rounds,
            pad=_LINE_PAD,
        )

    def _read_rects(
        self, reader: _TimedReader, rects: list[Rect], carried: Sequence[TextLine], height: int, width: int
    ) -> tuple[list[Rect], list[TextLine]]:
        """Read each rectangle; one whose lines reach an inner edge grows past it and is read again, for
        at most ``edge_rounds`` rounds. Returns the final rectangles and the lines read in them."""
        policy = self.policy
        found: dict[Rect, list[TextLine]] = {}
        for _ in range(policy.edge_rounds + 1):
            for rect in rects:
                if rect not in found:
                    found[rect] = reader.read(rect)
            grown = [self._past_cuts(reader.frame, rect, found[rect]) for rect in rects]
            if grown == rects:
                break
            rects, _ = self._cover(grown, carried, height, width)
        else:
            for rect in rects:  # the last round's growth is read too: no rectangle is left unread
                if rect not in found:
                    found[rect] = reader.read(rect)
        return rects, [line for rect in rects for line in found.get(rect, [])]

    def _past_cuts(self, frame: np.ndarray, rect: Rect, lines: Sequence[TextLine]) -> Rect:
        """``rect`` grown past each edge a line read inside it reaches (``regions.past_cuts``), except
        above or below it where the row outside is background: a line reaching such an edge is whole."""
        height, width = frame.shape[0], frame.shape[1]
        grown = past_cuts(rect, [Rect.around(line.box) for line in lines], height=height, width=width,
                          slack=_EDGE_SLACK, step=self.policy.tile)  # fmt: skip
        if grown.y0 == rect.y0 and grown.y1 == rect.y1:
            return grown
        above, below = sealed(frame, rect, tolerance=self.policy.quiet_tolerance)
        return Rect(grown.x0, rect.y0 if above else grown.y0, grown.x1, rect.y1 if below else grown.y1)


class _TimedReader:
    """Calls ``recognize`` on rectangles of one frame and adds up the time it takes."""

    def __init__(self, frame: np.ndarray, recognize: Recognize) -> None:
        self.frame = frame
        self._recognize = recognize
        self.seconds = 0.0
        self.pixels = 0

    def read(self, rect: Rect) -> list[TextLine]:
        self.pixels += rect.area
        started = time.perf_counter()
        try:
            return list(self._recognize(self.frame, rect.roi()))
        finally:
            self.seconds += time.perf_counter() - started


def _split(lines: Sequence[TextLine], rects: Sequence[Rect]) -> tuple[list[TextLine], list[TextLine]]:
    """Lines outside every rectangle (reused) and lines touching one (replaced by what was read)."""
    kept: list[TextLine] = []
    replaced: list[TextLine] = []
    for line in lines:
        box = Rect.around(line.box)
        (replaced if any(rect.intersects(box) for rect in rects) else kept).append(line)
    return kept, replaced
