"""``POST /api/v1/ocr``: the image as the request body, for clients that cannot use shared memory (and for fallback).

The body is the image itself (or the one file of a multipart form, ``uploads``), never JSON: either
an encoded file (PNG, JPEG, WebP, BMP, TIFF, GIF; mode ``http_image``; without a specific content type
its magic number decides) or raw uint8 pixels as ``application/octet-stream`` with their shape in the query
(``height``, ``width``, ``channels``, ``pixel_format``, ``pitch``) or in headers (``X-Shmbridge-Shape: HxWxC``,
``X-Shmbridge-Pixel-Format``; mode ``http_raw``). Raw bytes are viewed with numpy where they landed, never
re-encoded or copied again. OCR options travel as query parameters; an unknown parameter is an error,
never silently ignored. The answer is the shared ``OcrResult``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from ...errors import ErrorCode, InvalidRequest, ShmBridgeError
from ...models import OcrResult, PixelFormat, Roi
from ...wire import RAW_MEDIA_TYPE, options_from_fields
from .context import HttpContext, request_id_of, stream_owner_of, tag_request
from .images import decode_image, parse_shape, raw_view
from .models import (
    ERROR_RESPONSES,
    MAX_FIELD,
    STREAM_QUERY,
    DeltaQuery,
    KeyframeQuery,
    StreamQuery,
    resolve_format,
)
from .render import render_png
from .uploads import GENERIC_MEDIA_TYPES, MULTIPART, check_media, media_type, read_upload, require_image

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "An encoded image, or raw uint8 pixels (application/octet-stream) with their shape given; "
        "as the body or as the one file of a multipart form. Without a specific type the bytes decide.",
        "content": {
            **{media: _BINARY for media in ("image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff")},
            RAW_MEDIA_TYPE: _BINARY,
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}
_QUERY = frozenset(
    {
        "height",
        "width",
        "channels",
        "pixel_format",
        "pitch",
        "dtype",
        "recognition_level",
        "languages",
        "custom_words",
        "minimum_text_height",
        "roi",
        "request_id",
        "render",
        *STREAM_QUERY,
    }
)
_Dim = Annotated[int | None, Query(gt=0, lt=1 << 31)]


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def ocr_router(ctx: HttpContext) -> APIRouter:
    router = APIRouter(tags=["fast"], responses=ERROR_RESPONSES)

    @router.post(
        "/api/v1/ocr",
        response_model=OcrResult,
        responses={
            200: {
                "content": {"image/png": {}},
                "description": "The result; with render=png, the image "
                "with each line's box, text and confidence drawn on it",
            }
        },
        summary="OCR an encoded image or raw pixels sent as the request body",
        openapi_extra=_BODY_DOC,
    )
    async def ocr(
        request: Request,
        response: Response,
        height: _Dim = None,
        width: _Dim = None,
        channels: Annotated[int | None, Query(ge=1, le=4, description="1, 3 or 4")] = None,
        pixel_format: Annotated[PixelFormat | None, Query()] = None,
        pitch: Annotated[int | None, Query(gt=0, lt=MAX_FIELD)] = None,
        dtype: Annotated[Literal["uint8"], Query()] = "uint8",
        recognition_level: Annotated[Literal["accurate", "fast"], Query()] = "accurate",
        languages: Annotated[str | None, Query(max_length=1024, description="Comma-separated")] = None,
        custom_words: Annotated[str | None, Query(max_length=65536, description="Comma-separated")] = None,
        minimum_text_height: Annotated[float, Query(ge=0.0, le=1.0)] = 0.03125,
        roi: Annotated[str | None, Query(max_length=128, description="x,y,width,height in pixels")] = None,
        request_id: Annotated[str | None, Query(max_length=128)] = None,
        stream: StreamQuery = None,
        keyframe: KeyframeQuery = False,
        delta: DeltaQuery = False,
        render: Annotated[
            Literal["png"] | None,
            Query(description="png: answer with the image and each line's box, text and confidence drawn on it"),
        ] = None,
        x_shmbridge_shape: Annotated[str | None, Header(max_length=64, description="HxWxC or HxW")] = None,
        x_shmbridge_pixel_format: Annotated[PixelFormat | None, Header()] = None,
    ) -> OcrResult | Response:
        rid = tag_request(request, response, request_id_of(request, request_id))
        ctx.count_fallback(request)
        media = media_type(request.headers.get("content-type"))
        shape_given = height is not None or width is not None or x_shmbridge_shape is not None
        raw = shape_given and (media in GENERIC_MEDIA_TYPES or media == MULTIPART)
        mode = "http_raw" if raw else "http_image"
        try:
            unknown = sorted(set(request.query_params) - _QUERY)
            if unknown:
                raise InvalidRequest(f"unknown query parameter(s): {', '.join(unknown)}", code=ErrorCode.UNKNOWN_OPTION)
            check_media(media)
            if shape_given and not raw:
                raise InvalidRequest(f"shape parameters describe raw pixels: send them as {RAW_MEDIA_TYPE}")
            options = options_from_fields(
                recognition_level=recognition_level,
                languages=_split(languages),
                custom_words=_split(custom_words),
                minimum_text_height=minimum_text_height,
                roi=Roi.parse(roi) if roi is not None else None,
                stream=stream,
                keyframe=keyframe,
                delta=delta,
            )
            if raw:
                shape = _raw_shape(height, width, channels, x_shmbridge_shape)
                fmt, count = resolve_format(shape[2], pixel_format or x_shmbridge_pixel_format)
                ctx.core.check_frame_size(shape[0], shape[1], count)
            upload = await read_upload(request, ctx.config.max_frame_bytes)
            body = upload.body
            if raw and not upload.generic:
                raise InvalidRequest(f"shape parameters describe raw pixels: send them as {RAW_MEDIA_TYPE}")
            if raw:
                image = raw_view(body, shape[0], shape[1], count, pitch)
            else:
                require_image(upload)
        except ShmBridgeError as exc:
            ctx.observe_error(mode, exc)
            raise
        owner = stream_owner_of(request)
        if raw:
            result = await ctx.core.process(image, fmt, options, mode=mode, request_id=rid, received_bytes=len(body),
                                            stream_owner=owner)  # fmt: skip
        else:
            check = ctx.core.check_frame_size
            result = await ctx.ocr_encoded(lambda: decode_image(body, check), options, mode=mode, request_id=rid,
                                           stream_owner=owner)  # fmt: skip
        if render is None:
            return result
        return await render_png(image if raw else bytes(body), fmt if raw else None, result, dict(response.headers))

    return router


def _raw_shape(
    height: int | None, width: int | None, channels: int | None, header: str | None
) -> tuple[int, int, int | None]:
    """Height, width and channels from the query, else the ``X-Shmbridge-Shape`` header (query wins)."""
    if header is not None:
        h, w, c = parse_shape(header)
        height, width = height or h, width or w
        channels = channels or c
    if height is None or width is None:
        raise InvalidRequest(
            "raw pixels need height and width (query) or X-Shmbridge-Shape", code=ErrorCode.BAD_DIMENSIONS
        )
    return height, width, channels
