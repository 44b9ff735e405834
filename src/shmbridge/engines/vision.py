"""Apple Vision (``VNRecognizeTextRequest`` on the Neural Engine): the default engine on macOS.

It owns the glue between a numpy view and Vision: a ``CGImage`` built over the array's own buffer
(``CGDataProviderCreateWithData`` + ``CGImageCreate``, no PNG encode, no copy), one text request per
call with every option set explicitly, and the conversion of Vision's normalised, bottom-left-origin
boxes into pixel quads with a top-left origin.

The pure parts (option mapping, language matching, coordinate conversion, bitmap layout, result
assembly) are plain functions tested on every platform. pyobjc is imported only when an engine is
built, so this module imports on Linux, where building one raises ``EngineUnavailable``. What it must
never do: keep the CGImage or its provider after ``recognize`` returns (both are released with the
autorelease pool that wraps each call, so the caller's memory is free to be reused).
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from .. import languages
from ..errors import EngineError, EngineUnavailable, ErrorCode, InvalidRequest
from ..models import Box, OcrOptions, PixelFormat, TextLine
from .base import Engine, EngineOutput
from .results import make_line

#: ``VNRequestTextRecognitionLevel``.
RECOGNITION_LEVELS = {"accurate": 0, "fast": 1}

# CoreGraphics constants, spelled out so the layout is testable without pyobjc.
K_CG_IMAGE_ALPHA_NONE = 0
K_CG_IMAGE_ALPHA_NONE_SKIP_LAST = 5
K_CG_IMAGE_ALPHA_NONE_SKIP_FIRST = 6
K_CG_BITMAP_BYTE_ORDER_DEFAULT = 0
K_CG_BITMAP_BYTE_ORDER_32_LITTLE = 2 << 12

Point = tuple[float, float]


# -- pure parts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CGLayout:
    """How CoreGraphics must read one pixel format straight from the caller's buffer."""

    bits_per_pixel: int
    bitmap_info: int
    gray: bool


def cg_layout(pixel_format: PixelFormat) -> CGLayout:
    """The ``CGImageCreate`` layout for a pixel format. Alpha is skipped: OCR reads the colour only."""
    layouts = {
        PixelFormat.GRAY: CGLayout(8, K_CG_IMAGE_ALPHA_NONE | K_CG_BITMAP_BYTE_ORDER_DEFAULT, gray=True),
        PixelFormat.RGB: CGLayout(24, K_CG_IMAGE_ALPHA_NONE | K_CG_BITMAP_BYTE_ORDER_DEFAULT, gray=False),
        PixelFormat.RGBA: CGLayout(32, K_CG_IMAGE_ALPHA_NONE_SKIP_LAST | K_CG_BITMAP_BYTE_ORDER_DEFAULT, gray=False),
        # Bytes B, G, R, X in memory are one little-endian 32-bit XRGB word.
        PixelFormat.BGRA: CGLayout(32, K_CG_IMAGE_ALPHA_NONE_SKIP_FIRST | K_CG_BITMAP_BYTE_ORDER_32_LITTLE, gray=False),
    }
    try:
        return layouts[pixel_format]
    except KeyError:
        raise InvalidRequest(
            f"CoreGraphics cannot read {pixel_format.value} pixels in place", code=ErrorCode.SHAPE_MISMATCH
        ) from None


def vision_point_to_pixels(point: Point, width: int, height: int) -> Point:
    """A normalised point with a bottom-left origin as pixels with a top-left origin."""
    return (point[0] * width, (1.0 - point[1]) * height)


def vision_rect_to_box(rect: tuple[float, float, float, float], width: int, height: int) -> Box:
    """A normalised ``(x, y, w, h)`` rect (origin at its bottom-left corner, image origin bottom-left)
    as a pixel box with a top-left origin."""
    x, y, w, h = rect
    return Box(x=x * width, y=(1.0 - y - h) * height, width=w * width, height=h * height)


def vision_quad_to_pixels(
    top_left: Point, top_right: Point, bottom_right: Point, bottom_left: Point, width: int, height: int
) -> tuple[Point, Point, Point, Point]:
    """Vision's four corners (named as the text reads) as a pixel quad clockwise from top-left."""
    return (
        vision_point_to_pixels(top_left, width, height),
        vision_point_to_pixels(top_right, width, height),
        vision_point_to_pixels(bottom_right, width, height),
        vision_point_to_pixels(bottom_left, width, height),
    )


@dataclass(frozen=True, slots=True)
class Observation:
    """What one ``VNRecognizedTextObservation`` says, as plain values (corners normalised, bottom-left)."""

    text: str
    confidence: float
    top_left: Point
    top_right: Point
    bottom_right: Point
    bottom_left: Point


def assemble_lines(observations: Iterable[Observation], width: int, height: int) -> list[TextLine]:
    """Observations as ``TextLine`` objects in pixel coordinates; empty texts are dropped."""
    lines: list[TextLine] = []
    for obs in observations:
        if not obs.text.strip():
            continue
        quad = vision_quad_to_pixels(obs.top_left, obs.top_right, obs.bottom_right, obs.bottom_left, width, height)
        lines.append(make_line(obs.text, min(1.0, max(0.0, float(obs.confidence))), quad))
    return lines


def match_languages(requested: Sequence[str], supported: Collection[str]) -> tuple[list[str], list[str]]:
    """Vision's spelling of each requested language, and the requested tags it does not support.

    Tesseract codes are read as their BCP-47 tags. An exact match wins (case-insensitive); otherwise the
    first supported tag with the same language
    (``en`` -> ``en-US``; ``zh-TW`` -> ``zh-Hant``).
    """
    exact = {tag.lower(): tag for tag in supported}
    by_language: dict[str, str] = {}
    for tag in supported:
        by_language.setdefault(_language_key(tag), tag)
    kept: list[str] = []
    unsupported: list[str] = []
    for tag in requested:
        spelled = languages.bcp47(tag) or tag  # eng -> en, chi_tra -> zh-Hant
        found = exact.get(spelled.lower()) or by_language.get(_language_key(spelled))
        if found is None:
            unsupported.append(tag)
        elif found not in kept:
            kept.append(found)
    return kept, unsupported


def _language_key(tag: str) -> str:
    parts = tag.replace("_", "-").lower().split("-")
    if parts[0] == "zh":
        return "zh-hant" if any(p in ("hant", "tw", "hk", "mo") for p in parts[1:]) else "zh-hans"
    return parts[0]


@dataclass(frozen=True, slots=True)
class RequestSettings:
    """Every property set on a ``VNRecognizeTextRequest``, explicitly, for one call."""

    recognition_level: int
    languages: tuple[str, ...]
    custom_words: tuple[str, ...]
    uses_language_correction: bool
    minimum_text_height: float


def request_settings(
    options: OcrOptions, supported: Collection[str] | None, language_correction: bool = True
) -> tuple[RequestSettings, list[str]]:
    """Map ``OcrOptions`` onto Vision's request and say what could not be honoured.

    ``supported`` is the list Vision reports for the requested level (``None`` when unknown: the
    languages pass through). With no supported language left, Vision reads with its default, English.
    """
    warnings: list[str] = []
    level = RECOGNITION_LEVELS[options.recognition_level]
    if supported is None:
        languages = list(options.languages)
    else:
        languages, unsupported = match_languages(options.languages, supported)
        if unsupported:
            warnings.append(
                f"vision ({options.recognition_level}) does not support {', '.join(unsupported)}; they were ignored"
            )
        if not languages:
            languages = ["en-US"]
            warnings.append("no requested language is supported by vision; read as en-US")
    if options.custom_words and not language_correction:
        warnings.append("custom_words need language correction, which this vision engine has turned off")
    settings = RequestSettings(
        recognition_level=level,
        languages=tuple(languages),
        custom_words=tuple(options.custom_words),
        uses_language_correction=language_correction,
        minimum_text_height=float(options.minimum_text_height),
    )
    return settings, warnings


# -- the engine (pyobjc from here on) --------------------------------------------------------------------


class VisionEngine(Engine):
    """Apple Vision text recognition over the caller's pixels, one request per call."""

    name: ClassVar[str] = "vision"
    native_formats: ClassVar[frozenset[PixelFormat]] = frozenset(
        {PixelFormat.GRAY, PixelFormat.RGB, PixelFormat.RGBA, PixelFormat.BGRA}
    )
    accepts_strides: ClassVar[bool] = False

    def __init__(self, *, language_correction: bool = True) -> None:
        """``language_correction``: Vision's language model pass (needed for custom words); turn it off
        for identifiers and code, which it "corrects" into words."""
        if sys.platform != "darwin":
            raise EngineUnavailable("the vision engine runs only on macOS; use rapidocr or tesseract")
        try:
            import objc
            import Quartz
            import Vision
        except ImportError as exc:
            raise EngineUnavailable(
                f"engine 'vision' needs pyobjc ({exc.name or exc}): pip install 'shmbridge[vision]'"
            ) from exc
        self._bind(Vision, Quartz, objc, language_correction)

    @classmethod
    def from_frameworks(
        cls, vision: ModuleType | Any, quartz: ModuleType | Any, objc: ModuleType | Any, **kwargs: Any
    ) -> VisionEngine:
        """Build over given framework modules without the platform check (tests drive the glue with
        stand-ins for pyobjc this way; real use goes through the constructor)."""
        engine = cls.__new__(cls)
        engine._bind(vision, quartz, objc, bool(kwargs.pop("language_correction", True)))
        if kwargs:
            raise TypeError(f"unexpected options {sorted(kwargs)}")
        return engine

    def _bind(self, vision: Any, quartz: Any, objc: Any, language_correction: bool) -> None:
        self._vision = vision
        self._quartz = quartz
        self._objc = objc
        self._language_correction = language_correction
        self._gray_space = quartz.CGColorSpaceCreateDeviceGray()
        self._rgb_space = quartz.CGColorSpaceCreateWithName(quartz.kCGColorSpaceSRGB)
        self._supported: dict[int, tuple[str, ...] | None] = {}

    def _supported_languages(self, level: int) -> tuple[str, ...] | None:
        """What Vision reads at ``level`` on this macOS, asked once per level."""
        if level not in self._supported:
            request = self._vision.VNRecognizeTextRequest.alloc().init()
            request.setRecognitionLevel_(level)
            languages, error = request.supportedRecognitionLanguagesAndReturnError_(None)
            self._supported[level] = None if error is not None or languages is None else tuple(languages)
        return self._supported[level]

    def warm_up(self) -> None:
        """Load Vision's models with one request over a small blank image."""
        blank = np.full((64, 256), 255, dtype=np.uint8)
        self.recognize(blank, PixelFormat.GRAY, OcrOptions())

    def recognize(self, image: np.ndarray, pixel_format: PixelFormat, options: OcrOptions) -> EngineOutput:
        if not image.flags.c_contiguous:
            raise InvalidRequest("vision needs C-contiguous pixels", code=ErrorCode.SHAPE_MISMATCH)
        level = RECOGNITION_LEVELS[options.recognition_level]
        settings, warnings = request_settings(options, self._supported_languages(level), self._language_correction)
        height, width = image.shape[:2]
        with self._objc.autorelease_pool():
            cg_image = self._cg_image(image, pixel_format)
            request = self._vision.VNRecognizeTextRequest.alloc().init()
            self._configure(request, settings)
            handler = self._vision.VNImageRequestHandler.alloc().initWithCGImage_options_(cg_image, {})
            ok, error = handler.performRequests_error_([request], None)
            if not ok:
                raise EngineError(f"Vision text recognition failed: {error}")
            observations = [obs for obs in map(_observation, request.results() or []) if obs is not None]
            del handler, cg_image  # nothing may outlive the call: the caller reuses the memory
        return EngineOutput(lines=assemble_lines(observations, width, height), warnings=warnings)

    def _cg_image(self, image: np.ndarray, pixel_format: PixelFormat) -> Any:
        """A CGImage reading the array's own bytes: the provider wraps the buffer, nothing is copied."""
        layout = cg_layout(pixel_format)
        quartz = self._quartz
        provider = quartz.CGDataProviderCreateWithData(None, image, image.nbytes, None)
        return quartz.CGImageCreate(
            image.shape[1],
            image.shape[0],
            8,
            layout.bits_per_pixel,
            image.strides[0],
            self._gray_space if layout.gray else self._rgb_space,
            layout.bitmap_info,
            provider,
            None,
            False,
            quartz.kCGRenderingIntentDefault,
        )

    @staticmethod
    def _configure(request: Any, settings: RequestSettings) -> None:
        request.setRecognitionLevel_(settings.recognition_level)
        request.setRecognitionLanguages_(list(settings.languages))
        request.setCustomWords_(list(settings.custom_words))
        request.setUsesLanguageCorrection_(settings.uses_language_correction)
        request.setMinimumTextHeight_(settings.minimum_text_height)
        if hasattr(request, "setAutomaticallyDetectsLanguage_"):  # macOS 13+: the list given is the list
            request.setAutomaticallyDetectsLanguage_(False)

    def capabilities(self) -> dict[str, Any]:
        return {
            **super().capabilities(),
            "recognition_levels": sorted(RECOGNITION_LEVELS),
            "languages": list(self._supported_languages(RECOGNITION_LEVELS["accurate"]) or ()),
            "custom_words": True,
            "minimum_text_height": "passed to Vision",
            "language_correction": self._language_correction,
        }


def _observation(obs: Any) -> Observation | None:
    candidates = obs.topCandidates_(1)
    if not candidates:
        return None
    best = candidates[0]
    return Observation(
        text=str(best.string()),
        confidence=float(best.confidence()),
        top_left=_xy(obs.topLeft()),
        top_right=_xy(obs.topRight()),
        bottom_right=_xy(obs.bottomRight()),
        bottom_left=_xy(obs.bottomLeft()),
    )


def _xy(point: Any) -> Point:
    return (float(point.x), float(point.y))
