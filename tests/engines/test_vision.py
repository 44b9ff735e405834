"""Apple Vision: its pure parts everywhere, and its pyobjc glue against stand-ins for the frameworks.

Vision itself runs only on macOS. The stand-ins below are the one place these engine tests fake
anything: they record what the engine asks of Quartz and Vision (the only pyobjc-bound code) and answer
with observations in Vision's coordinate system, so the whole path from pixels to lines runs here.
"""

from __future__ import annotations

import gc
import sys
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from shmbridge.engines import create_engine
from shmbridge.engines.vision import (
    K_CG_BITMAP_BYTE_ORDER_32_LITTLE,
    K_CG_IMAGE_ALPHA_NONE,
    K_CG_IMAGE_ALPHA_NONE_SKIP_FIRST,
    K_CG_IMAGE_ALPHA_NONE_SKIP_LAST,
    Observation,
    VisionEngine,
    assemble_lines,
    cg_layout,
    match_languages,
    request_settings,
    vision_point_to_pixels,
    vision_quad_to_pixels,
    vision_rect_to_box,
)
from shmbridge.errors import EngineError, EngineUnavailable, InvalidRequest
from shmbridge.models import Box, OcrOptions, PixelFormat

# -- pure parts -------------------------------------------------------------------------------------------


def _flat(quad: Any) -> list[float]:
    return [float(value) for point in quad for value in point]


def test_points_flip_to_a_top_left_origin() -> None:
    assert vision_point_to_pixels((0.0, 0.0), 200, 100) == (0.0, 100.0)  # Vision's origin: bottom-left
    assert vision_point_to_pixels((1.0, 1.0), 200, 100) == (200.0, 0.0)
    assert vision_point_to_pixels((0.25, 0.75), 200, 100) == (50.0, 25.0)


def test_rect_flips_by_its_top_edge() -> None:
    # A rect whose bottom edge is at half height and whose top edge is at three quarters.
    assert vision_rect_to_box((0.25, 0.5, 0.5, 0.25), 200, 100) == Box(x=50, y=25, width=100, height=25)
    assert vision_rect_to_box((0.0, 0.0, 1.0, 1.0), 640, 480) == Box(x=0, y=0, width=640, height=480)


def test_quad_stays_clockwise_from_top_left() -> None:
    quad = vision_quad_to_pixels((0.1, 0.9), (0.5, 0.9), (0.5, 0.8), (0.1, 0.8), 1000, 500)
    assert _flat(quad) == pytest.approx([100, 50, 500, 50, 500, 100, 100, 100])


def test_assemble_lines_builds_pixel_lines() -> None:
    observations = [
        Observation("Save", 1.2, (0.1, 0.9), (0.3, 0.9), (0.3, 0.8), (0.1, 0.8)),
        Observation("  ", 0.9, (0.0, 0.1), (0.1, 0.1), (0.1, 0.0), (0.0, 0.0)),
    ]
    (line,) = assemble_lines(observations, 200, 100)
    assert line.text == "Save" and line.confidence == 1.0
    assert line.box.x == pytest.approx(20) and line.box.y == pytest.approx(10)
    assert line.box.width == pytest.approx(40) and line.box.height == pytest.approx(10)


@pytest.mark.parametrize(
    ("fmt", "bpp", "info", "gray"),
    [
        (PixelFormat.GRAY, 8, K_CG_IMAGE_ALPHA_NONE, True),
        (PixelFormat.RGB, 24, K_CG_IMAGE_ALPHA_NONE, False),
        (PixelFormat.RGBA, 32, K_CG_IMAGE_ALPHA_NONE_SKIP_LAST, False),
        (PixelFormat.BGRA, 32, K_CG_IMAGE_ALPHA_NONE_SKIP_FIRST | K_CG_BITMAP_BYTE_ORDER_32_LITTLE, False),
    ],
)
def test_cg_layout(fmt: PixelFormat, bpp: int, info: int, gray: bool) -> None:
    layout = cg_layout(fmt)
    assert (layout.bits_per_pixel, layout.bitmap_info, layout.gray) == (bpp, info, gray)
    assert fmt in VisionEngine.native_formats


def test_bgr_has_no_in_place_layout() -> None:
    assert PixelFormat.BGR not in VisionEngine.native_formats
    with pytest.raises(InvalidRequest):
        cg_layout(PixelFormat.BGR)


SUPPORTED = ("en-US", "fr-FR", "de-DE", "zh-Hans", "zh-Hant")


def test_languages_match_exactly_then_by_language() -> None:
    kept, unsupported = match_languages(["en-US", "en-GB", "FR", "zh-TW", "tlh"], SUPPORTED)
    assert kept == ["en-US", "fr-FR", "zh-Hant"]
    assert unsupported == ["tlh"]


def test_default_options_set_everything_explicitly_without_warnings() -> None:
    settings, warnings = request_settings(OcrOptions(), SUPPORTED)
    assert warnings == []
    assert settings.recognition_level == 0
    assert settings.languages == ("en-US",)
    assert settings.custom_words == ()
    assert settings.uses_language_correction is True
    assert settings.minimum_text_height == 0.03125


def test_options_map_onto_the_request() -> None:
    options = OcrOptions(
        recognition_level="fast", languages=("de", "tlh"), custom_words=("shmbridge",), minimum_text_height=0.1
    )
    settings, warnings = request_settings(options, SUPPORTED, language_correction=False)
    assert settings.recognition_level == 1
    assert settings.languages == ("de-DE",)
    assert settings.custom_words == ("shmbridge",)
    assert settings.uses_language_correction is False
    assert settings.minimum_text_height == 0.1
    assert warnings == [
        "vision (fast) does not support tlh; they were ignored",
        "custom_words need language correction, which this vision engine has turned off",
    ]


def test_no_supported_language_falls_back_to_english() -> None:
    settings, warnings = request_settings(OcrOptions(languages=("tlh",)), SUPPORTED)
    assert settings.languages == ("en-US",)
    assert warnings[-1] == "no requested language is supported by vision; read as en-US"
    passthrough, none = request_settings(OcrOptions(languages=("xx-YY",)), None)
    assert passthrough.languages == ("xx-YY",) and none == []


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
def test_linux_refuses_with_a_clear_message() -> None:
    message = "the vision engine runs only on macOS; use rapidocr or tesseract"
    with pytest.raises(EngineUnavailable) as caught:
        VisionEngine()
    assert str(caught.value) == message
    with pytest.raises(EngineUnavailable, match="only on macOS"):
        create_engine("vision")


# -- the pyobjc glue, against stand-ins -------------------------------------------------------------------


@dataclass
class _Calls:
    log: list[tuple[str, Any]] = field(default_factory=list)
    pools: int = 0


class _Point(SimpleNamespace):
    x: float
    y: float


class _Observation:
    def __init__(self, text: str, confidence: float, corners: list[tuple[float, float]]) -> None:
        self._text, self._confidence, self._corners = text, confidence, corners

    def topCandidates_(self, count: int) -> list[Any]:
        return [SimpleNamespace(string=lambda: self._text, confidence=lambda: self._confidence)][:count]

    def topLeft(self) -> _Point:
        return _Point(x=self._corners[0][0], y=self._corners[0][1])

    def topRight(self) -> _Point:
        return _Point(x=self._corners[1][0], y=self._corners[1][1])

    def bottomRight(self) -> _Point:
        return _Point(x=self._corners[2][0], y=self._corners[2][1])

    def bottomLeft(self) -> _Point:
        return _Point(x=self._corners[3][0], y=self._corners[3][1])


def _frameworks(calls: _Calls, observations: list[_Observation], ok: bool = True) -> tuple[Any, Any, Any]:
    class Request:
        def __init__(self) -> None:
            self.results_: list[_Observation] = []

        @classmethod
        def alloc(cls) -> Any:
            return SimpleNamespace(init=cls)

        def __getattr__(self, selector: str) -> Any:
            if selector.startswith("set"):
                return lambda value: calls.log.append((selector, value))
            raise AttributeError(selector)

        def supportedRecognitionLanguagesAndReturnError_(self, error: None) -> tuple[list[str], None]:
            return list(SUPPORTED), None

        def results(self) -> list[_Observation]:
            return self.results_

    class Handler:
        @classmethod
        def alloc(cls) -> Any:
            return cls()

        def initWithCGImage_options_(self, image: Any, options: dict[str, Any]) -> Handler:
            calls.log.append(("handler", image))
            return self

        def performRequests_error_(self, requests: list[Any], error: None) -> tuple[bool, Any]:
            for request in requests:
                request.results_ = observations
            return (True, None) if ok else (False, "the Neural Engine is busy")

    def create_provider(info: Any, data: Any, size: int, release: Any) -> Any:
        calls.log.append(("provider", (id(data), size)))
        return "provider"

    def create_image(*args: Any) -> Any:
        calls.log.append(("CGImageCreate", args))
        return "cgimage"

    @contextmanager
    def autorelease_pool() -> Any:
        calls.pools += 1
        yield

    quartz = SimpleNamespace(
        CGColorSpaceCreateDeviceGray=lambda: "gray-space",
        CGColorSpaceCreateWithName=lambda name: f"space:{name}",
        kCGColorSpaceSRGB="sRGB",
        kCGRenderingIntentDefault=0,
        CGDataProviderCreateWithData=create_provider,
        CGImageCreate=create_image,
    )
    vision = SimpleNamespace(VNRecognizeTextRequest=Request, VNImageRequestHandler=Handler)
    return vision, quartz, SimpleNamespace(autorelease_pool=autorelease_pool)


def test_glue_builds_a_cgimage_over_the_buffer_and_converts_results() -> None:
    calls = _Calls()
    # One line across the top fifth of the image, as Vision reports it (bottom-left origin).
    observation = _Observation("Quarterly Report", 0.97, [(0.1, 0.95), (0.6, 0.95), (0.6, 0.8), (0.1, 0.8)])
    engine = VisionEngine.from_frameworks(*_frameworks(calls, [observation]))
    image = np.zeros((100, 200, 3), np.uint8)
    image.flags.writeable = False
    options = OcrOptions(custom_words=("shmbridge",), minimum_text_height=0.05)

    output = engine.recognize(image, PixelFormat.RGB, options)

    log = dict(calls.log)
    assert log["provider"] == (id(image), image.nbytes)  # the array itself: no copy, no encode
    assert log["CGImageCreate"] == (
        200,
        100,
        8,
        24,
        600,
        "space:sRGB",
        K_CG_IMAGE_ALPHA_NONE,
        "provider",
        None,
        False,
        0,
    )
    assert log["handler"] == "cgimage"
    assert log["setRecognitionLevel_"] == 0
    assert log["setRecognitionLanguages_"] == ["en-US"]
    assert log["setCustomWords_"] == ["shmbridge"]
    assert log["setUsesLanguageCorrection_"] is True
    assert log["setMinimumTextHeight_"] == 0.05
    assert log["setAutomaticallyDetectsLanguage_"] is False
    assert calls.pools == 1
    (line,) = output.lines
    assert line.text == "Quarterly Report" and line.confidence == pytest.approx(0.97)
    assert _flat(line.quad) == pytest.approx([20, 5, 120, 5, 120, 20, 20, 20])
    assert output.warnings == []

    reference = weakref.ref(image)
    del image
    gc.collect()
    assert reference() is None  # the engine kept nothing that points at the caller's pixels


def test_glue_uses_gray_space_for_gray_and_reports_failures() -> None:
    calls = _Calls()
    engine = VisionEngine.from_frameworks(*_frameworks(calls, [], ok=False))
    with pytest.raises(EngineError, match="Neural Engine is busy"):
        engine.recognize(np.zeros((10, 30), np.uint8), PixelFormat.GRAY, OcrOptions())
    args = dict(calls.log)["CGImageCreate"]
    assert args[3] == 8 and args[4] == 30 and args[5] == "gray-space"
    with pytest.raises(InvalidRequest):
        engine.recognize(np.zeros((10, 30, 4), np.uint8)[:, ::2], PixelFormat.BGRA, OcrOptions())


def test_capabilities_list_vision_languages() -> None:
    engine = VisionEngine.from_frameworks(*_frameworks(_Calls(), []))
    caps = engine.capabilities()
    assert caps["languages"] == list(SUPPORTED) and caps["recognition_levels"] == ["accurate", "fast"]
    assert caps["native_formats"] == ["bgra", "gray", "rgb", "rgba"]
