"""The limits a service tells its clients: one table for a session's WELCOME and ``/api/v1/bridge/info``.

Owns each limit's name as clients read it, the ``ServiceConfig`` attribute it comes from, which door
reports it, and how a client reads one back (``slots_per_segment``, the default ``slots`` of ALLOC). It
must never read the environment or a config file (it is handed a config), and never change a name or
the WELCOME's order within protocol version 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["DEFAULT_SLOTS_PER_SEGMENT", "LIMITS", "Limit", "info_limits", "slots_per_segment", "welcome_limits"]

#: A segment's slots when the service names no number (``ServiceConfig.slots_per_segment`` defaults to it).
DEFAULT_SLOTS_PER_SEGMENT = 4


class Limit(NamedTuple):
    name: str  # as clients read it
    attribute: str  # of ``ServiceConfig``
    welcome: bool  # in a session's WELCOME
    info: bool  # in ``/api/v1/bridge/info``


#: Every limit, in the order of the WELCOME, then the service-wide ones only HTTP reports.
LIMITS = (
    Limit("max_frame_bytes", "max_frame_bytes", welcome=True, info=True),
    Limit("max_pixels", "max_pixels", welcome=True, info=True),
    Limit("session_bytes", "session_bytes", welcome=True, info=True),
    Limit("slots_per_segment", "slots_per_segment", welcome=True, info=True),
    Limit("max_control_frame", "max_control_frame", welcome=True, info=False),
    Limit("max_in_flight", "in_flight_limit", welcome=True, info=True),
    Limit("request_timeout", "request_timeout", welcome=True, info=True),
    Limit("max_segments_per_session", "max_segments_per_session", welcome=True, info=False),
    Limit("queue_size", "queue_size", welcome=False, info=True),
    Limit("engine_timeout", "engine_timeout", welcome=False, info=True),
    Limit("max_sessions", "max_sessions", welcome=False, info=True),
    Limit("total_bytes", "total_bytes", welcome=False, info=True),
    Limit("max_regions_per_client", "max_regions_per_client", welcome=False, info=True),
    Limit("max_region_bytes", "max_region_bytes", welcome=False, info=True),
)


def welcome_limits(config: Any) -> dict[str, Any]:
    """The ``limits`` of a session's WELCOME for ``config`` (a ``ServiceConfig``)."""
    return {limit.name: getattr(config, limit.attribute) for limit in LIMITS if limit.welcome}


def info_limits(config: Any, **derived: Any) -> dict[str, Any]:
    """The ``limits`` of ``/api/v1/bridge/info`` for ``config``, with ``derived`` ones (the JSON body
    limit, which the HTTP app computes) after them."""
    return {**{limit.name: getattr(config, limit.attribute) for limit in LIMITS if limit.info}, **derived}


def slots_per_segment(limits: Mapping[str, Any]) -> int:
    """The ``slots`` a client asks for in ALLOC: the WELCOME's, else the default."""
    return int(limits.get("slots_per_segment", DEFAULT_SLOTS_PER_SEGMENT))
