"""HTTP-controlled shared memory: register files as regions, OCR pixels inside them, and report status.

For clients that cannot pass file descriptors (Node.js, shells). The registry (``regions.py``) does the
opening, checking and reading; this module only translates HTTP to it and hands a read-only copy of the
pixels (read with ``pread``, counted in ``bytes_copied``: a mapping of a file its client can truncate
could kill the service with SIGBUS) to ``ServiceCore.process`` (mode ``shm_region``) with ``on_release``
dropping the region's reference, so unregistering a region in use waits for its requests. Session mode
is the zero-copy one (sealed memory).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from ...errors import ShmBridgeError
from ...models import OcrResult
from .context import HttpContext, client_of, request_id_of, stream_owner_of, tag_request
from .models import (
    ERROR_RESPONSES,
    DeltaQuery,
    KeyframeQuery,
    RegionCreate,
    RegionInfo,
    RegionList,
    RegionRemoved,
    ShmOcrRequest,
    StreamQuery,
    resolve_format,
)
from .regions import check_name

MODE = "shm_region"
#: Reads of more bytes than this run in a worker thread, so the loop does not wait for them.
_INLINE_READ = 1 << 20


def shmem_router(ctx: HttpContext) -> APIRouter:
    router = APIRouter(tags=["shared memory"], responses=ERROR_RESPONSES)
    registry = ctx.regions
    gauge = ctx.core.metrics.regions

    @router.post("/api/v1/shmem/regions", response_model=RegionInfo, status_code=201, summary="Register a region")
    async def register(body: RegionCreate, request: Request) -> dict[str, Any]:
        region = registry.register(body.name, client_of(request), body.offset, body.byte_size)
        gauge.set(len(registry))
        return region.info()

    @router.get("/api/v1/shmem/regions", response_model=RegionList, summary="List registered regions")
    async def list_regions() -> dict[str, Any]:
        registry.require_enabled()
        status = registry.status()
        return {"regions": registry.list_regions(), "count": status["count"], "bytes_mapped": status["bytes_mapped"]}

    @router.delete(
        "/api/v1/shmem/regions/{name}",
        response_model=RegionRemoved,
        summary="Unregister a region (deferred while requests use it)",
    )
    async def unregister(name: str) -> dict[str, Any]:
        check_name(name)
        removed = registry.unregister(name)
        gauge.set(len(registry))
        return removed

    @router.post("/api/v1/shmem/ocr", response_model=OcrResult, summary="OCR pixels inside a registered region")
    async def shm_ocr(
        body: ShmOcrRequest,
        request: Request,
        response: Response,
        stream: StreamQuery = None,
        keyframe: KeyframeQuery = False,
        delta: DeltaQuery = False,
    ) -> OcrResult:
        rid = tag_request(request, response, request_id_of(request, body.request_id))
        ctx.count_fallback(request)
        try:
            fmt, channels = resolve_format(body.channels, body.pixel_format)
            options = body.options(stream=stream, keyframe=keyframe, delta=delta)
            ctx.core.check_frame_size(body.height, body.width, channels)
            region = registry.acquire(body.region)
        except ShmBridgeError as exc:
            ctx.observe_error(MODE, exc)
            raise
        try:
            args = (region, body.offset, body.height, body.width, channels, body.pitch)
            if body.height * (body.pitch or body.width * channels) > _INLINE_READ:
                view = await asyncio.to_thread(registry.view, *args)
            else:
                view = registry.view(*args)
        except BaseException as exc:
            registry.release(region)
            if isinstance(exc, ShmBridgeError):
                ctx.observe_error(MODE, exc)
            raise
        try:
            return await ctx.core.process(
                view,
                fmt,
                options,
                mode=MODE,
                request_id=rid,
                copied_bytes=view.nbytes,
                on_release=lambda: registry.release(region),
                stream_owner=stream_owner_of(request),
            )
        finally:
            del view  # the request's copy of the pixels

    @router.get("/api/v1/shmem/status", summary="Sessions, slots, bytes mapped and regions")
    async def shmem_status() -> dict[str, Any]:
        sessions = ctx.sessions.status() if ctx.sessions is not None else None
        return {
            "session_mode": ctx.sessions is not None,
            "sessions": sessions["sessions"] if sessions else 0,
            "slots_in_use": sessions["slots_in_use"] if sessions else 0,
            "bytes_mapped": ctx.budget.used_bytes,
            "socket_path": sessions["socket_path"] if sessions else None,
            "regions": {**registry.status(), "items": registry.list_regions()},
        }

    return router
