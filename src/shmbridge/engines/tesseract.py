"""Tesseract through ``tesserocr``: an optional engine, light and fast on document text.

It owns the tesseract API objects of one engine instance (one per language set, the set given at
construction first), the lookup of language data on disk, and the mapping of ``OcrOptions`` onto what
tesseract can honour. The service gives every worker thread its own instance, so an API object is never
used by two threads at once.

Pixels go in raw through ``SetImageBytes`` (no PNG encode). tesserocr only accepts ``bytes`` there, so
each request costs one copy of the pixels (``tobytes``); as that copy happens anyway it also flattens a
strided view, so the engine accepts strides and the service never copies first. What it must never do:
load language data it was not asked for, or keep the image after ``recognize`` returns (``Clear``
drops tesseract's own copy).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import languages
from ..errors import EngineUnavailable, ErrorCode, InvalidRequest
from ..models import OcrOptions, PixelFormat, TextLine
from .base import Engine, EngineOutput
from .results import drop_short_lines, make_line, sample_image

#: Where distributions put tessdata, most specific first (Debian/Ubuntu, Fedora, Homebrew, /usr/local).
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)

#: Tesseract's fallback when an image carries no resolution; set explicitly so it stops warning on stderr.
DEFAULT_DPI = 70
#: Language sets kept loaded per instance besides the constructed one (each costs tens of MB).
MAX_EXTRA_LANGUAGE_SETS = 3


def tesseract_language(tag: str) -> str | None:
    """``en-US`` -> ``eng``, ``zh-Hant-TW`` -> ``chi_tra``, ``deu`` -> ``deu`` (see ``shmbridge.languages``);
    ``None`` for a language tesseract has no name for."""
    return languages.tesseract_code(tag)


def debian_package(code: str) -> str:
    """The Debian package that ships ``<code>.traineddata`` (``chi_sim`` -> ``tesseract-ocr-chi-sim``)."""
    return "tesseract-ocr-" + code.replace("_", "-")


def find_tessdata(explicit: str | Path | None = None) -> Path | None:
    """The tessdata folder to use: the one given, ``$TESSDATA_PREFIX``, or the first that exists."""
    if explicit is not None:
        return Path(explicit)
    candidates = [os.environ["TESSDATA_PREFIX"]] if os.environ.get("TESSDATA_PREFIX") else []
    candidates += list(TESSDATA_DIRS)
    for candidate in candidates:
        if Path(candidate).is_dir():
            return Path(candidate)
    return None


class TesseractEngine(Engine):
    """Line-level tesseract OCR with boxes and confidences, raw pixels in."""

    name: ClassVar[str] = "tesseract"
    native_formats: ClassVar[frozenset[PixelFormat]] = frozenset({PixelFormat.GRAY, PixelFormat.RGB, PixelFormat.RGBA})
    accepts_strides: ClassVar[bool] = True

    def __init__(
        self,
        *,
        languages: Sequence[str] = ("en-US",),
        tessdata: str | Path | None = None,
        psm: int | None = None,
        dpi: int = DEFAULT_DPI,
    ) -> None:
        """``languages``: loaded at construction (a request asking for others loads them on demand);
        ``psm``: tesseract's page segmentation mode, by default 11 (sparse text): on the synthetic 1080p
        desktop it halves the character error of AUTO (32% against 57%; the loss is light-on-dark text,
        which tesseract reads poorly either way) and reads the scanned test pages as well as AUTO;
        ``dpi``: the resolution tesseract assumes for raw pixels."""
        try:
            import tesserocr
        except ImportError as exc:
            raise EngineUnavailable(
                f"engine 'tesseract' needs tesserocr ({exc}): pip install 'shmbridge[tesseract]' "
                "and apt-get install tesseract-ocr-eng"
            ) from exc
        self._tesserocr = tesserocr
        self._tessdata = find_tessdata(tessdata)
        self._psm = int(tesserocr.PSM.SPARSE_TEXT if psm is None else psm)
        self._dpi = int(dpi)
        codes = [tesseract_language(tag) for tag in languages]
        unknown = [tag for tag, code in zip(languages, codes, strict=True) if code is None]
        if unknown:
            raise EngineUnavailable(f"tesseract has no language code for {', '.join(unknown)}")
        self._default_langs = "+".join(dict.fromkeys(code for code in codes if code))
        missing = self._missing_data(self._default_langs.split("+"))
        if missing:
            raise EngineUnavailable(self._missing_message(missing))
        self._default_api = self._open(self._default_langs)
        self._extra: OrderedDict[str, Any] = OrderedDict()

    # -- language data ------------------------------------------------------------------------------

    def _missing_data(self, codes: Sequence[str]) -> list[str]:
        if self._tessdata is None:
            return list(codes)
        return [code for code in codes if not (self._tessdata / f"{code}.traineddata").is_file()]

    def _missing_message(self, codes: Sequence[str]) -> str:
        where = f"in {self._tessdata}" if self._tessdata else f"(no tessdata folder among {TESSDATA_DIRS})"
        packages = " ".join(debian_package(code) for code in codes)
        return f"tesseract language data {', '.join(codes)} is missing {where}: apt-get install {packages}"

    def _open(self, langs: str) -> Any:
        path = str(self._tessdata).rstrip("/") + "/"
        try:
            return self._tesserocr.PyTessBaseAPI(path=path, lang=langs, psm=self._psm)
        except RuntimeError as exc:
            raise EngineUnavailable(f"tesseract failed to load {langs} from {path}: {exc}") from exc

    def _api_for(self, options: OcrOptions, warnings: list[str]) -> Any:
        """The API object for the requested languages, loading a new set on demand (a few are kept)."""
        codes: list[str] = []
        for tag in options.languages:
            code = tesseract_language(tag)
            if code is None:
                unknown = languages.unknown_tags_warning([tag])
                warnings.append(unknown or f"tesseract has no language code for {tag!r}; it was ignored")
            elif code not in codes:
                codes.append(code)
        missing = self._missing_data(codes)
        if missing:
            warnings.append(
                f"tesseract language data {', '.join(missing)} is not installed "
                f"(apt-get install {' '.join(debian_package(code) for code in missing)}); it was ignored"
            )
        langs = "+".join(code for code in codes if code not in missing)
        if not langs:
            warnings.append(f"no requested language is available; read with {self._default_langs}")
            return self._default_api
        if langs == self._default_langs:
            return self._default_api
        if langs in self._extra:
            self._extra.move_to_end(langs)
            return self._extra[langs]
        api = self._open(langs)
        self._extra[langs] = api
        if len(self._extra) > MAX_EXTRA_LANGUAGE_SETS:
            _, oldest = self._extra.popitem(last=False)
            oldest.End()
        return api

    # -- the engine interface -----------------------------------------------------------------------

    def warm_up(self) -> None:
        self.recognize(sample_image(3), PixelFormat.RGB, OcrOptions())

    def recognize(self, image: np.ndarray, pixel_format: PixelFormat, options: OcrOptions) -> EngineOutput:
        if pixel_format not in self.native_formats or image.ndim not in (2, 3):
            raise InvalidRequest(
                f"tesseract takes gray, RGB or RGBA pixels, not {pixel_format.value} {image.shape}",
                code=ErrorCode.SHAPE_MISMATCH,
            )
        warnings = self._option_warnings(options)
        api = self._api_for(options, warnings)
        height, width = image.shape[:2]
        depth = pixel_format.channels
        pixels = image.tobytes()  # the one copy tesserocr requires (it takes bytes only)
        level = self._tesserocr.RIL.TEXTLINE
        lines: list[TextLine] = []
        try:
            api.SetImageBytes(pixels, width, height, depth, width * depth)
            api.SetSourceResolution(self._dpi)
            api.Recognize()
            iterator = api.GetIterator()
            for item in self._tesserocr.iterate_level(iterator, level):
                text = (item.GetUTF8Text(level) or "").strip()
                box = item.BoundingBox(level)
                if not text or box is None:
                    continue
                x0, y0, x1, y1 = box
                quad = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
                confidence = min(1.0, max(0.0, item.Confidence(level) / 100.0))
                lines.append(make_line(" ".join(text.split()), confidence, quad))
        finally:
            api.Clear()  # drop tesseract's copy of the image and its results
        lines = drop_short_lines(lines, options.minimum_text_height, height)
        return EngineOutput(lines=lines, warnings=warnings, bytes_copied=len(pixels))

    @staticmethod
    def _option_warnings(options: OcrOptions) -> list[str]:
        warnings: list[str] = []
        if options.recognition_level != "accurate":
            warnings.append(
                f"recognition_level {options.recognition_level!r} is not supported by tesseract; "
                "it ran at its only level"
            )
        if options.custom_words:
            warnings.append("custom_words are not supported by tesseract")
        return warnings

    def capabilities(self) -> dict[str, Any]:
        installed = sorted(p.stem for p in self._tessdata.glob("*.traineddata")) if self._tessdata else []
        return {
            **super().capabilities(),
            "recognition_levels": ["accurate"],
            "languages": languages.bcp47_list(languages.from_tesseract(code) for code in installed),
            "default_languages": languages.bcp47_list(
                languages.from_tesseract(c) for c in self._default_langs.split("+")
            ),
            "installed_languages": installed,
            "custom_words": False,
            "minimum_text_height": "lines shorter than a minimum above the default 1/32 are dropped",
            "psm": self._psm,
            "tessdata": str(self._tessdata),
        }

    def close(self) -> None:
        """End every API object; safe to call twice."""
        apis = [self._default_api, *self._extra.values()] if self._default_api is not None else []
        self._default_api = None
        self._extra.clear()
        for api in apis:
            api.End()
