"""``/api/v1/streams``: an HTTP client's screen streams, listed and closed.

A stream is opened by its first frame (``?stream=NAME`` on ``/api/v1/ocr`` or ``/api/v1/shmem/ocr``) and
belongs to the client key (``X-Shmbridge-Client``, else the remote address). It is freed after
``stream_idle_ttl`` seconds unused, or at once by ``DELETE``. This module owns only those two routes.
What it must never do: read frames (that is ``ServiceCore`` through ``service/streaming``) or reach
another client's streams.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...streams.registry import check_name
from .context import HttpContext, stream_owner_of
from .models import ERROR_RESPONSES


def streams_router(ctx: HttpContext) -> APIRouter:
    router = APIRouter(tags=["streams"], responses=ERROR_RESPONSES)
    registry = ctx.core.streams.registry

    @router.get("/api/v1/streams", summary="Your screen streams, and the limits on them")
    async def list_streams(request: Request) -> dict[str, Any]:
        registry.sweep()
        limits = registry.limits
        return {
            "streams": registry.names(stream_owner_of(request)),
            "limits": {
                "per_client": limits.per_client,
                "total": limits.total,
                "state_bytes": limits.state_bytes,
                "idle_ttl_s": limits.idle_ttl,
            },
        }

    @router.delete("/api/v1/streams/{name}", summary="Close one of your screen streams (its next frame is a keyframe)")
    async def close_stream(name: str, request: Request) -> dict[str, Any]:
        check_name(name)
        return {"name": name, "closed": registry.close(stream_owner_of(request), name)}

    return router
