"""The old service's HTTP API, kept so its clients work unchanged: JSON bodies with base64 images.

``POST /api/v1/vision/ocr``, ``/api/v1/vision/ocr/batch`` and ``/api/v1/vision/text``. Field names and
defaults are the old ones; boxes are pixels with a top-left origin (the one deliberate change). This path
is the slow one (base64 plus an image decode); it exists for compatibility, not speed. Every request goes
through ``ServiceCore.process`` with mode ``legacy``. A single request that fails gets an HTTP error in the
shared error shape; in a batch, each failed item carries its error inside the 200 answer.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request, Response

from ...errors import Busy, RequestTimeout, ShmBridgeError
from ...models import OcrResult
from .context import HttpContext, request_id_of, tag_request
from .images import decode_base64, decode_image
from .models import (
    ERROR_RESPONSES,
    ErrorInfo,
    LegacyBatchRequest,
    LegacyBatchResponse,
    LegacyOcrRequest,
    LegacyOcrResponse,
    LegacyTextResponse,
    legacy_boxes,
    legacy_response,
)

MODE = "legacy"
LEGACY_JSON_PATHS = frozenset({"/api/v1/vision/ocr", "/api/v1/vision/ocr/batch", "/api/v1/vision/text"})


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1e3


def _ignored(request: LegacyOcrRequest) -> list[str]:
    extra = request.ignored_fields()
    return [f"ignored unknown field(s): {', '.join(extra)}"] if extra else []


async def _ocr(ctx: HttpContext, request: LegacyOcrRequest, request_id: str) -> OcrResult:
    try:
        options = request.options()
    except ShmBridgeError as exc:
        ctx.observe_error(MODE, exc)
        raise
    text, check = request.image_data, ctx.core.check_frame_size
    return await ctx.ocr_encoded(
        lambda: decode_image(decode_base64(text), check), options, mode=MODE, request_id=request_id
    )


def legacy_router(ctx: HttpContext) -> APIRouter:
    router = APIRouter(tags=["legacy"], responses=ERROR_RESPONSES)

    @router.post("/api/v1/vision/ocr", response_model=LegacyOcrResponse, summary="OCR one base64 image (old API)")
    async def vision_ocr(body: LegacyOcrRequest, request: Request, response: Response) -> LegacyOcrResponse:
        started = time.perf_counter()
        request_id = tag_request(request, response, request_id_of(request, body.request_id))
        ctx.count_fallback(request)
        result = await _ocr(ctx, body, request_id)
        return legacy_response(result, body, _ms_since(started), _ignored(body))

    @router.post(
        "/api/v1/vision/text", response_model=LegacyTextResponse, summary="Text regions of one base64 image (old API)"
    )
    async def vision_text(body: LegacyOcrRequest, request: Request, response: Response) -> LegacyTextResponse:
        started = time.perf_counter()
        request_id = tag_request(request, response, request_id_of(request, body.request_id))
        ctx.count_fallback(request)
        result = await _ocr(ctx, body, request_id)
        return LegacyTextResponse(
            request_id=request_id,
            text_regions=legacy_boxes(result),
            processing_time_ms=_ms_since(started),
            width=result.width,
            height=result.height,
            engine=result.engine,
        )

    @router.post(
        "/api/v1/vision/ocr/batch",
        response_model=LegacyBatchResponse,
        summary="OCR several base64 images (old API); failed items carry their error",
    )
    async def vision_ocr_batch(body: LegacyBatchRequest, request: Request, response: Response) -> LegacyBatchResponse:
        started = time.perf_counter()
        batch_id = tag_request(request, response, request_id_of(request))
        ctx.count_fallback(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (body.timeout_seconds or ctx.config.request_timeout)
        # More parallelism than the engine has only fills the admission queue: cap it there.
        gate = asyncio.Semaphore(max(1, min(body.max_concurrent, ctx.config.in_flight_limit)))

        async def one(index: int, item: str | LegacyOcrRequest) -> LegacyOcrResponse:
            request_item = item if isinstance(item, LegacyOcrRequest) else LegacyOcrRequest(image_data=item)
            item_id = request_item.request_id or f"{batch_id}-{index}"
            item_started = time.perf_counter()
            try:
                async with gate:
                    result = await _with_deadline(ctx, request_item, item_id, deadline)
                return legacy_response(result, request_item, _ms_since(item_started), _ignored(request_item))
            except ShmBridgeError as exc:
                return LegacyOcrResponse(
                    request_id=item_id,
                    processing_time_ms=_ms_since(item_started),
                    language=(request_item.languages or ["en-US"])[0],
                    error=f"{exc.code.name}: {exc.message}",
                    error_detail=ErrorInfo.model_validate(exc.to_dict()),
                    engine=ctx.core.pool.name,
                )

        results = await asyncio.gather(*(one(index, item) for index, item in enumerate(body.images)))
        failed = sum(1 for result in results if result.error is not None)
        return LegacyBatchResponse(
            request_id=batch_id,
            results=list(results),
            total=len(results),
            succeeded=len(results) - failed,
            failed=failed,
            processing_time_ms=_ms_since(started),
        )

    return router


async def _with_deadline(ctx: HttpContext, item: LegacyOcrRequest, item_id: str, deadline: float) -> OcrResult:
    """One batch item before ``deadline``; a full queue is waited out (bounded) instead of failing the item."""
    loop = asyncio.get_running_loop()
    for _attempt in range(1000):  # bounded; the deadline ends it far sooner
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            return await asyncio.wait_for(_ocr(ctx, item, item_id), remaining)
        except TimeoutError:
            break
        except Busy as exc:
            await asyncio.sleep(max(0.0, min(exc.retry_after, deadline - loop.time())))
    raise RequestTimeout("the batch's timeout_seconds passed before this image was done")
