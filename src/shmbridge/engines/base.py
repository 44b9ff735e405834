"""The engine interface: a read-only pixel view in, recognised lines out.

An engine never knows which transport brought the image. It declares the pixel formats it takes
natively and whether it accepts strided views, so the service converts at most once and never copies
a frame only to make it contiguous. What an engine must never do: write to the array it is given
(it is often a read-only view of a client's shared memory), or keep a reference to it after
``recognize`` returns (the slot is reused for the next frame).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..models import OcrOptions, PixelFormat, StreamInfo, TextLine


@dataclass(slots=True)
class EngineOutput:
    """What an engine found, before the service adds timings and request metadata."""

    lines: list[TextLine] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checksum: str | None = None
    #: Pixel bytes the engine itself had to copy (tesserocr takes ``bytes``); counted in the metrics.
    bytes_copied: int = 0
    #: Seconds per stage the engine has (``STAGES``); a stage it lacks is absent. Together they never
    #: exceed the time ``recognize`` took.
    stages: dict[str, float] = field(default_factory=dict)
    #: What a screen stream did with the frame, when the service read it through one (engines leave it).
    stream: StreamInfo | None = None


#: The stages an engine may time, as ``EngineOutput.stages`` keys (``Timings`` has a ``<stage>_ms`` each):
#: finding the lines, reading them, and the work after (box fitting, filtering, reading order).
STAGES = ("detect", "recognize", "postprocess")


class Engine(abc.ABC):
    """One OCR engine instance. The service keeps a pool of them and lends each to one thread at a time,
    so an instance never runs two requests at once and need not be thread-safe itself."""

    #: Registry name.
    name: ClassVar[str]
    #: Pixel formats ``recognize`` takes without conversion.
    native_formats: ClassVar[frozenset[PixelFormat]]
    #: Whether ``recognize`` accepts any strides (a cropped view) without the service copying first.
    accepts_strides: ClassVar[bool] = False
    #: The keyword that sets this engine's inference threads per instance, which the service fills from
    #: the thread budget (``engines.threads``) unless the operator set it; None: the engine has none.
    thread_option: ClassVar[str | None] = None
    #: False only for engines that finish in microseconds and never block (null): the service then
    #: calls them on the thread that received the request (the event loop, a session thread) instead of
    #: paying a thread hop.
    blocking: ClassVar[bool] = True

    def warm_up(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Run once at service start so the first real request is not slow."""

    @abc.abstractmethod
    def recognize(self, image: np.ndarray, pixel_format: PixelFormat, options: OcrOptions) -> EngineOutput:
        """OCR ``image`` (H×W or H×W×C uint8, in one of ``native_formats``).

        ``options.roi`` has already been applied by the service (``image`` is the cropped view);
        boxes are returned relative to ``image`` and the service shifts them into frame coordinates.
        """

    def capabilities(self) -> dict[str, Any]:
        """What this engine honours, for ``/api/v1/bridge/info`` and the ``warnings`` list."""
        return {
            "name": self.name,
            "native_formats": sorted(fmt.value for fmt in self.native_formats),
            "accepts_strides": self.accepts_strides,
        }

    def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release native resources."""
