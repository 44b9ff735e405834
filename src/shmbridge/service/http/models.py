"""Request and response bodies of the HTTP API (pydantic), and the mapping to the shared models.

The legacy models keep every field name and default of the old service so its clients work unchanged;
new fields are only added, never renamed. Coordinates are pixels with a top-left origin everywhere (the
old service sent Vision's normalised bottom-left values). Nothing here does I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...errors import ErrorCode, InvalidRequest
from ...models import OcrOptions, OcrResult, PixelFormat, Roi, TextLine, Timings
from ...wire import options_from_fields

MAX_FIELD = 1 << 48
MAX_BATCH = 64
COORDINATES = "pixels, top-left origin"


class OptionFields(BaseModel):
    """OCR options as flat body fields, shared by the legacy and shared-memory requests."""

    recognition_level: Literal["accurate", "fast"] = "accurate"
    languages: list[str] | None = Field(default=None, max_length=32, description='Default ["en-US"].')
    custom_words: list[str] | None = Field(default=None, max_length=10_000)
    minimum_text_height: float = Field(default=0.03125, ge=0.0, le=1.0, description="Fraction of the image height.")
    roi: Roi | None = Field(default=None, description="Region of interest in pixels, top-left origin.")

    @field_validator("roi", mode="before")
    @classmethod
    def _roi_text(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return Roi.parse(value)
            except InvalidRequest as exc:
                raise ValueError(exc.message) from None
        return value

    def options(self, **stream_fields: Any) -> OcrOptions:
        """The shared options; ``stream_fields`` are a stream's (``stream``, ``keyframe``, ``delta``), which
        travel in the query, not in the body."""
        return options_from_fields(
            recognition_level=self.recognition_level,
            languages=self.languages if self.languages is not None else ["en-US"],
            custom_words=self.custom_words or [],
            minimum_text_height=self.minimum_text_height,
            roi=self.roi,
            **stream_fields,
        )


#: The query parameters of a screen stream, on ``/api/v1/ocr`` and ``/api/v1/shmem/ocr``.
STREAM_QUERY = ("stream", "keyframe", "delta")
StreamQuery = Annotated[
    str | None,
    Query(
        max_length=256,
        description="Read the image as the next frame of this screen stream (yours: scoped by X-Shmbridge-Client, "
        "else your address); only what changed since its previous frame is read again",
    ),
]
KeyframeQuery = Annotated[bool, Query(description="With stream: read the whole frame this time")]
DeltaQuery = Annotated[bool, Query(description="With stream: list the lines added and removed in stream.added/removed")]


# -- legacy (the old service's JSON) -------------------------------------------------------------


class LegacyOcrRequest(OptionFields):
    """The old service's OCR request. Unknown fields are accepted (old clients sent some) and named in
    ``warnings``; ``priority`` is accepted and has no effect."""

    model_config = ConfigDict(extra="allow")

    image_data: str = Field(description="Base64 image (PNG, JPEG, WebP, BMP, TIFF, GIF); a data: URL prefix is fine.")
    priority: int | str | None = Field(default=None, description="Accepted for compatibility; ignored.")
    request_id: str | None = Field(default=None, max_length=128)

    def ignored_fields(self) -> list[str]:
        return sorted(self.model_extra or {})


class LegacyBox(BaseModel):
    """A box as the old service named its fields, in pixels with a top-left origin."""

    text: str
    x: float
    y: float
    width: float
    height: float
    confidence: float


class ErrorInfo(BaseModel):
    """The one error shape's inner object (see ``errors``)."""

    code: str = Field(description="errors.ErrorCode name, e.g. BUSY")
    code_num: int
    message: str
    retry_after: float | None = Field(default=None, description="BUSY only; also sent as Retry-After.")
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


#: Documented error answers, shared by every OCR route (for /docs and /openapi.json).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Undecodable or empty image, shape/bytes mismatch, bad option"},
    413: {"model": ErrorResponse, "description": "Body, pixels or bytes over the service's limits"},
    415: {"model": ErrorResponse, "description": "Unsupported media type"},
    422: {"model": ErrorResponse, "description": "The body or query does not match the schema"},
    503: {"model": ErrorResponse, "description": "Busy (see Retry-After) or shutting down"},
    504: {"model": ErrorResponse, "description": "The engine or the queue took too long"},
}


class LegacyOcrResponse(BaseModel):
    """The old result fields first (same names, same meaning except boxes are now pixels), then new ones."""

    request_id: str | None = None
    text: str = ""
    confidence: float = 0.0
    processing_time_ms: float = 0.0
    ane_used: bool = False
    bounding_boxes: list[LegacyBox] = Field(default_factory=list)
    language: str | None = None
    error: str | None = Field(default=None, description="Set only on failed batch items.")
    cache_hit: bool = False
    # New in shmbridge.
    lines: list[TextLine] = Field(default_factory=list)
    engine: str = ""
    width: int = 0
    height: int = 0
    timings: Timings = Field(default_factory=Timings)
    warnings: list[str] = Field(default_factory=list)
    checksum: str | None = None
    coordinates: str = COORDINATES
    error_detail: ErrorInfo | None = Field(default=None, description="The typed error of a failed batch item.")


def legacy_boxes(result: OcrResult) -> list[LegacyBox]:
    return [
        LegacyBox(
            text=line.text,
            x=line.box.x,
            y=line.box.y,
            width=line.box.width,
            height=line.box.height,
            confidence=line.confidence,
        )
        for line in result.lines
    ]


def legacy_response(
    result: OcrResult, request: LegacyOcrRequest, processing_ms: float, warnings: list[str]
) -> LegacyOcrResponse:
    languages = request.languages or ["en-US"]
    return LegacyOcrResponse(
        request_id=result.request_id,
        text=result.text,
        confidence=result.confidence,
        processing_time_ms=processing_ms,
        ane_used=result.engine == "vision",
        bounding_boxes=legacy_boxes(result),
        language=languages[0] if languages else None,
        lines=result.lines,
        engine=result.engine,
        width=result.width,
        height=result.height,
        timings=result.timings,
        warnings=[*result.warnings, *warnings],
        checksum=result.checksum,
    )


class LegacyBatchRequest(BaseModel):
    """``images`` holds legacy requests or bare base64 strings (which get the default options)."""

    model_config = ConfigDict(extra="allow")

    images: list[str | LegacyOcrRequest] = Field(min_length=1, max_length=MAX_BATCH)
    max_concurrent: int = Field(default=4, ge=1, le=MAX_BATCH)
    timeout_seconds: float | None = Field(
        default=None, gt=0, le=3600, description="Deadline for the whole batch; default: the service's request timeout."
    )


class LegacyBatchResponse(BaseModel):
    request_id: str
    results: list[LegacyOcrResponse]
    total: int
    succeeded: int
    failed: int
    processing_time_ms: float


class LegacyTextResponse(BaseModel):
    """``/api/v1/vision/text``: the text regions only."""

    request_id: str | None
    text_regions: list[LegacyBox]
    processing_time_ms: float
    width: int
    height: int
    engine: str
    coordinates: str = COORDINATES


# -- HTTP-controlled shared memory -----------------------------------------------------------------


class RegionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: "0" and true are not offsets.
    name: str = Field(max_length=256, strict=True, description="A file name inside the service's region directory.")
    offset: int = Field(default=0, ge=0, lt=MAX_FIELD, strict=True)
    byte_size: int | None = Field(
        default=None, gt=0, lt=MAX_FIELD, strict=True, description="Default: to the end of the file."
    )


class RegionInfo(BaseModel):
    name: str
    client: str
    offset: int
    byte_size: int
    file_size: int
    in_use: int
    state: Literal["active", "closing"]
    registered_at: float


class RegionList(BaseModel):
    regions: list[RegionInfo]
    count: int
    bytes_mapped: int


class RegionRemoved(BaseModel):
    name: str
    unregistered: bool
    deferred: bool = Field(description="True when requests still used it: it is unmapped when they finish.")
    in_use: int


class ShmOcrRequest(OptionFields):
    """OCR pixels inside a registered region. ``offset`` is relative to the region's start."""

    model_config = ConfigDict(extra="forbid")

    region: str = Field(max_length=256, strict=True)
    offset: int = Field(default=0, ge=0, lt=MAX_FIELD, strict=True)
    height: int = Field(gt=0, lt=MAX_FIELD, strict=True)
    width: int = Field(gt=0, lt=MAX_FIELD, strict=True)
    channels: Literal[1, 3, 4] | None = Field(default=None, description="Default: from pixel_format, else 3.")
    pixel_format: PixelFormat | None = Field(default=None, description="Default: gray, rgb or rgba by channels.")
    pitch: int | None = Field(
        default=None, gt=0, lt=MAX_FIELD, strict=True, description="Row stride in bytes; default packed."
    )
    dtype: Literal["uint8"] = "uint8"
    request_id: str | None = Field(default=None, max_length=128)


def resolve_format(channels: int | None, pixel_format: PixelFormat | str | None) -> tuple[PixelFormat, int]:
    """Fill in whichever of channels and pixel format is missing; refuse a contradiction."""
    if pixel_format is not None:
        try:
            fmt = PixelFormat(pixel_format)
        except ValueError:
            choices = ", ".join(f.value for f in PixelFormat)
            raise InvalidRequest(f"pixel_format {pixel_format!r} is not one of {choices}") from None
        if channels is not None and channels != fmt.channels:
            raise InvalidRequest(
                f"pixel format {fmt.value} has {fmt.channels} channel(s), not {channels}", code=ErrorCode.SHAPE_MISMATCH
            )
        return fmt, fmt.channels
    count = 3 if channels is None else channels
    return PixelFormat.default_for(count), count
