"""HTTP-controlled shared memory: register files as regions, OCR pixels inside them, and report status.

For clients that cannot pass file descriptors (Node.js, shells). The registry (``regions.py``) does the
opening, checking and mapping; this module only translates HTTP to it and hands a read-only, zero-copy
view to ``ServiceCore.process`` (mode ``shm_region``) with ``on_release`` dropping the region's reference,
so unregistering a region in use waits for its requests. Session mode is safer (sealed memory); see
``regions.py`` for the truncation caveat.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ..errors import ShmBridgeError
from ..models import OcrResult
from .http_context import HttpContext, client_of, request_id_of, tag_request
from .http_models import (
    ERROR_RESPONSES,
    RegionCreate,
    RegionInfo,
    RegionList,
    RegionRemoved,
    ShmOcrRequest,
    resolve_format,
)
from .regions import check_name

MODE = "shm_region"


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
    async def shm_ocr(body: ShmOcrRequest, request: Request, response: Response) -> OcrResult:
        rid = tag_request(request, response, request_id_of(request, body.request_id))
        ctx.count_fallback(request)
        try:
            fmt, channels = resolve_format(body.channels, body.pixel_format)
            options = body.options()
            ctx.core.check_frame_size(body.height, body.width, channels)
            region = registry.acquire(body.region)
        except ShmBridgeError as exc:
            ctx.observe_error(MODE, exc)
            raise
        try:
            view = registry.view(region, body.offset, body.height, body.width, channels, body.pitch)
        except BaseException as exc:
            registry.release(region)
            if isinstance(exc, ShmBridgeError):
                ctx.observe_error(MODE, exc)
            raise
        try:
            return await ctx.core.process(
                view, fmt, options, mode=MODE, request_id=rid, on_release=lambda: registry.release(region)
            )
        finally:
            del view  # the last reference to the mapping's buffer from this request

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
