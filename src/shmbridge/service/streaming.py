"""A request read through a screen stream: the service's side of ``streams/``.

It owns the service's ``StreamRegistry`` (built from the config's limits and keyframe rules) and the one
call that reads a frame as the next of a stream: each rectangle the stream reads borrows an engine
instance the usual way (``EnginePool.run_sync``), and the step's lines, stage times, copies and warnings
come back as one ``EngineOutput`` carrying the step's ``StreamInfo``, so the core shapes the result
exactly as for any other request (``stream_in_frame`` puts the info in the frame's coordinates). It also
counts the stream metrics.

What it must never do: keep the frame, know which transport carried it, or hold an engine instance
from one rectangle to the next (a stream's step may read several, and other requests wait for them).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ..config import ServiceConfig
from ..engines import EngineOutput
from ..engines.pixels import crop
from ..engines.results import shift_lines
from ..errors import InvalidRequest
from ..models import OcrOptions, PixelFormat, Roi, StreamInfo
from ..streams import StreamPolicy, engine_reader
from ..streams.registry import StreamLimits, StreamOwner, StreamRegistry, check_name
from .metrics import Metrics

if TYPE_CHECKING:
    from .engine_pool import EnginePool

__all__ = ["StreamOwner", "StreamReads", "stream_in_frame"]


class StreamReads:
    """The service's streams and the reading of a request through one."""

    def __init__(self, config: ServiceConfig, metrics: Metrics) -> None:
        limits = StreamLimits(
            per_session=config.max_streams_per_session,
            per_client=config.max_streams_per_client,
            total=config.max_streams,
            state_bytes=config.max_stream_state_bytes,
            idle_ttl=config.stream_idle_ttl,
        )
        policy = StreamPolicy(
            keyframe_frames=config.stream_keyframe_frames,
            keyframe_seconds=config.stream_keyframe_seconds,
            keyframe_area=config.stream_keyframe_area,
        )
        self.registry = StreamRegistry(limits, policy)
        self._metrics = metrics
        metrics.live_streams.set_function(lambda: len(self.registry))

    @staticmethod
    def check(options: OcrOptions, owner: StreamOwner | None) -> None:
        """Refuse a stream request before any work: a bad name, a transport without streams, or the
        stream-only fields given without a stream."""
        if options.stream is None:
            if options.keyframe or options.delta:
                raise InvalidRequest("keyframe and delta apply to a stream: name one with stream=NAME")
            return
        check_name(options.stream)
        if owner is None:
            raise InvalidRequest("this endpoint has no screen streams: use /api/v1/ocr, /api/v1/shmem/ocr or a session")

    def read(
        self,
        pool: EnginePool,
        image: np.ndarray,
        pixel_format: PixelFormat,
        options: OcrOptions,
        owner: StreamOwner,
    ) -> tuple[EngineOutput, float]:
        """Read ``image`` (its region of interest, if the options name one) as the next frame of the
        owner's stream; returns the output (what the stream did in its ``stream``) and the seconds it all
        took, as ``EngineWork`` does.

        Runs on whichever thread has the request (an engine worker,
        or the caller's for a non-blocking engine)."""
        assert options.stream is not None
        started = time.perf_counter()
        outputs: list[EngineOutput] = []

        def one_rectangle(native: np.ndarray, fmt: PixelFormat, opts: OcrOptions) -> EngineOutput:
            output, _seconds = pool.run_sync(native, fmt, opts)
            outputs.append(output)
            return output

        recognize = engine_reader(pool, pixel_format, options.reading, run=one_rectangle)
        step = self.registry.read(
            owner,
            options.stream,
            crop(image, options.roi),
            recognize,
            settings=(pixel_format, options.reading),
            keyframe=options.keyframe,
            delta=options.delta,
        )
        info = step.info
        stages: dict[str, float] = {"fingerprint": info.fingerprint_ms / 1e3, "merge": info.merge_ms / 1e3}
        warnings: list[str] = []
        for output in outputs:
            for stage, seconds in output.stages.items():
                stages[stage] = stages.get(stage, 0.0) + seconds
            warnings.extend(warning for warning in output.warnings if warning not in warnings)
        merged = EngineOutput(
            lines=step.lines,
            warnings=warnings,
            checksum=outputs[-1].checksum if outputs else None,
            bytes_copied=sum(output.bytes_copied for output in outputs),
            stages=stages,
            stream=info,
        )
        self._metrics.observe_stream(info)
        return merged, time.perf_counter() - started

    def release(self, owner: StreamOwner) -> int:
        """Free every stream of an owner whose session ended; how many there were."""
        return self.registry.release(owner)


def stream_in_frame(info: StreamInfo, roi: Roi | None) -> StreamInfo:
    """A stream's info in the frame's coordinates: a stream over a region of interest sees the region."""
    if roi is None:
        return info
    return info.model_copy(
        update={
            "rects": [rect.model_copy(update={"x": rect.x + roi.x, "y": rect.y + roi.y}) for rect in info.rects],
            "added": None if info.added is None else shift_lines(info.added, roi.x, roi.y),
            "removed": None if info.removed is None else shift_lines(info.removed, roi.x, roi.y),
        }
    )
