"""Screen streams: read only what changed between frames of one stream, and say what changed.

A stream sits above the engines and below the transports: a transport (later ``ServiceCore``) looks up
the stream in a ``StreamRegistry`` and calls ``Stream.read(frame, recognize)``, where ``recognize`` is
any engine wrapped by ``engine_reader``. Nothing here knows about sockets, HTTP or shared memory.
"""

from __future__ import annotations

from .fingerprint import DEFAULT_TILE, Fingerprints, fingerprint
from .policy import KeyframeReason, StreamPolicy
from .reader import engine_reader
from .stream import Recognize, Stream, StreamStep

__all__ = [
    "DEFAULT_TILE",
    "Fingerprints",
    "KeyframeReason",
    "Recognize",
    "Stream",
    "StreamPolicy",
    "StreamStep",
    "engine_reader",
    "fingerprint",
]
