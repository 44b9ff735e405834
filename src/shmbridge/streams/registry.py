"""Which streams exist, whose they are, and the limits on them.

It owns the table of live streams, keyed by owner and name: a session's streams live until the session
ends (``release``), an HTTP client's until they sit idle longer than ``idle_ttl`` (swept on every
``acquire``, so no timer is needed). It enforces the limits (streams per session, per HTTP client, in
total; bytes of state per stream) and validates names, each with a typed error saying what to do.

What it must never do: read pixels itself or keep a stream of an owner that was released. The table
belongs to one ``StreamRegistry`` instance (the service's), never to the module.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InvalidStreamName, StreamLimitExceeded
from .policy import StreamPolicy
from .stream import Recognize, Stream, StreamStep

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_name(name: object) -> str:
    """``name`` if it is 1-64 characters of letters, digits, ``.``, ``_``, ``-`` starting with a letter or
    digit; ``InvalidStreamName`` otherwise."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        shown = repr(name)[:80]
        raise InvalidStreamName(
            f"stream name {shown} is invalid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class StreamOwner:
    """Who a stream belongs to: a session (until it ends) or an HTTP client key (until idle)."""

    kind: Literal["session", "http"]
    key: Hashable


@dataclass(frozen=True, slots=True)
class StreamLimits:
    per_session: int = 8
    per_client: int = 8
    total: int = 256
    state_bytes: int = 4 << 20
    #: Seconds an HTTP client's stream may sit unused before it is freed.
    idle_ttl: float = 300.0

    def __post_init__(self) -> None:
        if min(self.per_session, self.per_client, self.total, self.state_bytes) < 1 or self.idle_ttl <= 0:
            raise ValueError("stream limits and the idle TTL must be positive")


class StreamRegistry:
    """The service's live streams. Thread-safe: sessions run on their own threads."""

    def __init__(
        self,
        limits: StreamLimits | None = None,
        policy: StreamPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or StreamLimits()
        self.policy = policy or StreamPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._streams: dict[StreamOwner, dict[str, Stream]] = {}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(streams) for streams in self._streams.values())

    @property
    def state_bytes(self) -> int:
        with self._lock:
            every = [stream for streams in self._streams.values() for stream in streams.values()]
        return sum(stream.state_bytes for stream in every)

    def names(self, owner: StreamOwner) -> list[str]:
        with self._lock:
            return sorted(self._streams.get(owner, {}))

    def acquire(self, owner: StreamOwner, name: str) -> Stream:
        """The owner's stream of that name, created on first use within the limits."""
        check_name(name)
        self.sweep()
        with self._lock:
            streams = self._streams.get(owner, {})
            stream = streams.get(name)
            if stream is not None:
                return stream
            limit = self.limits.per_session if owner.kind == "session" else self.limits.per_client
            if len(streams) >= limit:
                raise StreamLimitExceeded(
                    f"this {'session' if owner.kind == 'session' else 'client'} already has {len(streams)} streams "
                    f"(the limit is {limit}): close one or reuse a name"
                )
            total = sum(len(every) for every in self._streams.values())
            if total >= self.limits.total:
                raise StreamLimitExceeded(
                    f"the service holds {total} streams, its limit; try again when others have closed or expired"
                )
            stream = Stream(name, self.policy, clock=self._clock)
            self._streams.setdefault(owner, {})[name] = stream
            return stream

    def read(
        self,
        owner: StreamOwner,
        name: str,
        frame: np.ndarray,
        recognize: Recognize,
        *,
        settings: Hashable = None,
        keyframe: bool = False,
        delta: bool = False,
    ) -> StreamStep:
        """Read ``frame`` as the next frame of the owner's stream ``name``: the one call a transport
        makes. A stream whose state grows past ``state_bytes`` is freed and the call fails."""
        stream = self.acquire(owner, name)
        step = stream.read(frame, recognize, settings=settings, keyframe=keyframe, delta=delta)
        if stream.state_bytes > self.limits.state_bytes:
            self.close(owner, name)
            raise StreamLimitExceeded(
                f"stream {name!r} needs {stream.state_bytes} bytes of state (the limit is {self.limits.state_bytes}): "
                "stream a smaller region, or raise the service's stream state limit"
            )
        return step

    def close(self, owner: StreamOwner, name: str) -> bool:
        """Free one stream; False if there was none."""
        with self._lock:
            streams = self._streams.get(owner)
            if not streams or streams.pop(name, None) is None:
                return False
            if not streams:
                del self._streams[owner]
            return True

    def release(self, owner: StreamOwner) -> int:
        """Free every stream of ``owner`` (its session ended); how many there were."""
        with self._lock:
            return len(self._streams.pop(owner, {}))

    def sweep(self) -> int:
        """Free HTTP clients' streams idle longer than ``idle_ttl``; how many were freed."""
        deadline = self._clock() - self.limits.idle_ttl
        freed = 0
        with self._lock:
            for owner in [owner for owner in self._streams if owner.kind == "http"]:
                streams = self._streams[owner]
                for name in [name for name, stream in streams.items() if stream.last_used < deadline]:
                    del streams[name]
                    freed += 1
                if not streams:
                    del self._streams[owner]
        return freed
