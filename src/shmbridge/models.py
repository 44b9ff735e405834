"""One model of a request and a result, shared by every transport.

The session server, every HTTP endpoint and both clients turn their input into ``OcrOptions`` plus a
pixel array, and every engine answers with lines that become one ``OcrResult``. Coordinates are
always pixels with a top-left origin, in the coordinates of the full frame (a region of interest
only limits where the engine looks).
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import ErrorCode, InvalidRequest


class PixelFormat(enum.StrEnum):
    """Channel order of the pixels. The number of channels follows from it."""

    GRAY = "gray"
    RGB = "rgb"
    BGR = "bgr"
    RGBA = "rgba"
    BGRA = "bgra"

    @property
    def channels(self) -> int:
        return _CHANNELS[self]

    @classmethod
    def default_for(cls, channels: int) -> PixelFormat:
        """RGB-family default for an array with that many channels."""
        try:
            return _DEFAULT_FOR[channels]  # a module dict: built once, not on every request
        except KeyError:
            raise InvalidRequest(
                f"an image has 1, 3 or 4 channels, not {channels}", code=ErrorCode.BAD_DIMENSIONS
            ) from None


_DEFAULT_FOR = {1: PixelFormat.GRAY, 3: PixelFormat.RGB, 4: PixelFormat.RGBA}
_CHANNELS = {
    PixelFormat.GRAY: 1,
    PixelFormat.RGB: 3,
    PixelFormat.BGR: 3,
    PixelFormat.RGBA: 4,
    PixelFormat.BGRA: 4,
}


class Roi(BaseModel):
    """A region of interest, in pixels, top-left origin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)

    @classmethod
    def parse(cls, text: str) -> Roi:
        """Parse ``"x,y,w,h"`` as written on a command line or in a query string."""
        try:
            x, y, w, h = (int(part) for part in text.split(","))
        except ValueError:
            raise InvalidRequest(f"a region is x,y,width,height, not {text!r}") from None
        return cls(x=x, y=y, width=w, height=h)

    def check_inside(self, height: int, width: int) -> None:
        if self.x + self.width > width or self.y + self.height > height:
            raise InvalidRequest(
                f"region {self.x},{self.y},{self.width},{self.height} lies outside the {width}x{height} image",
                code=ErrorCode.OUT_OF_BOUNDS,
            )


class OcrOptions(BaseModel):
    """What a caller may ask of an engine. Unknown fields are an error, never ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recognition_level: Literal["accurate", "fast"] = "accurate"
    languages: tuple[str, ...] = ("en-US",)
    custom_words: tuple[str, ...] = ()
    minimum_text_height: float = Field(default=0.03125, ge=0.0, le=1.0)
    roi: Roi | None = None
    stream: str | None = Field(
        default=None,
        description="Read this frame as the next of the named screen stream: only what changed since the "
        "stream's previous frame is read again (1-64 of letters, digits, '.', '_', '-').",
    )
    keyframe: bool = Field(default=False, description="With stream: read the whole frame this time.")
    delta: bool = Field(default=False, description="With stream: list the lines added and removed in the result.")

    @property
    def reading(self) -> OcrOptions:
        """These options without the stream's own fields: what decides how the engine reads a frame (a
        stream whose reading changes starts again from a keyframe)."""
        if self.stream is None and not self.keyframe and not self.delta:
            return self
        return self.model_copy(update={"stream": None, "keyframe": False, "delta": False})

    @field_validator("languages", "custom_words", mode="before")
    @classmethod
    def _accept_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part for part in value.split(",") if part)
        return value


DEFAULT_OPTIONS = OcrOptions()


class Box(BaseModel):
    """Axis-aligned box in pixels, top-left origin."""

    model_config = ConfigDict(frozen=True)

    x: float
    y: float
    width: float
    height: float


class TextLine(BaseModel):
    """One recognised line of text."""

    model_config = ConfigDict(frozen=True)

    text: str
    confidence: float
    box: Box
    quad: tuple[tuple[float, float], ...] = Field(
        description="Corners clockwise from top-left, in pixels, top-left origin."
    )


class Timings(BaseModel):
    """Where the service spent the time, in milliseconds.

    ``total_ms`` runs from the moment the service core has the pixels to the result; within it come
    ``convert_ms`` (region crop and pixel-format conversion), ``queue_ms`` (waiting for admission) and
    ``engine_ms``. Inside ``engine_ms`` are the engine's own stages: ``detect_ms``, ``recognize_ms`` and
    ``postprocess_ms`` (box fitting, filtering, reading order); an engine that does not split its work
    (tesseract, vision, null) reports only ``postprocess_ms``. ``decode_ms`` is an encoded image's
    decoding (HTTP image requests only), which happens before ``total_ms`` starts. A request read through
    a screen stream also has, inside ``engine_ms``, ``fingerprint_ms`` (comparing the frame's tiles with
    the previous frame's) and ``merge_ms`` (merging fresh lines with the reused ones); its engine stages
    are summed over the rectangles read. A stage a request does not have is 0.
    """

    queue_ms: float = 0.0
    engine_ms: float = 0.0
    total_ms: float = 0.0
    decode_ms: float = 0.0
    convert_ms: float = 0.0
    detect_ms: float = 0.0
    recognize_ms: float = 0.0
    postprocess_ms: float = 0.0
    fingerprint_ms: float = 0.0
    merge_ms: float = 0.0


class StreamInfo(BaseModel):
    """What a stream did with one frame (``OcrResult.stream``); ``lines`` still describe the whole frame."""

    name: str
    frame: int = Field(description="Index of this frame in the stream, from 0.")
    keyframe: bool = Field(description="The whole frame was read.")
    reason: str | None = Field(default=None, description="Why it was a keyframe (first, size, options, ...).")
    tiles: int = 0
    changed_tiles: int = 0
    scroll: int = Field(default=0, description="Rows the content moved down (negative: up); 0 if none.")
    rects: list[Roi] = Field(default_factory=list, description="The rectangles read again.")
    read_pixels: int = Field(default=0, description="Pixels handed to the engine, rectangles read twice included.")
    reused_lines: int = Field(default=0, description="Lines carried over from the previous frame unread.")
    read_lines: int = Field(default=0, description="Lines the engine read in this frame.")
    new_lines: int = Field(default=0, description="Lines not in the previous frame.")
    removed_lines: int = Field(default=0, description="Lines of the previous frame that are gone.")
    added: list[TextLine] | None = Field(default=None, description="With delta: the new lines.")
    removed: list[TextLine] | None = Field(default=None, description="With delta: the lines gone.")
    fingerprint_ms: float = 0.0
    engine_ms: float = 0.0
    merge_ms: float = 0.0


class OcrResult(BaseModel):
    """The answer to one OCR request, whatever transport carried it."""

    request_id: str | None = None
    text: str = ""
    lines: list[TextLine] = Field(default_factory=list)
    confidence: float = 0.0
    engine: str = ""
    width: int = 0
    height: int = 0
    timings: Timings = Field(default_factory=Timings)
    warnings: list[str] = Field(default_factory=list)
    checksum: str | None = Field(
        default=None, description="Set by the null engine: CRC-32 of the pixels it read, as hex."
    )
    stream: StreamInfo | None = None

    @property
    def processing_time_ms(self) -> float:
        return self.timings.total_ms


LowLatencyState = Literal["unknown", "off", "unavailable", "on"]


def low_latency_state(status: dict[str, object] | None) -> LowLatencyState:
    """What a service's ``low_latency`` status (``/api/v1/bridge/info``) says it does about idle CPUs:
    ``unknown`` (not reported), ``off``, ``unavailable`` (asked for, cannot act; ``reason`` says why) or
    ``on``. The one reading of that field for the status command and the benchmarks' reports."""
    if status is None:
        return "unknown"
    if not status.get("enabled"):
        return "off"
    return "on" if status.get("available") else "unavailable"


#: The names these had while "mode" also meant this (it means only how a request travelled now).
LowLatencyMode = LowLatencyState
low_latency_mode = low_latency_state
