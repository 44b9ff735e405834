"""RapidOCR (PP-OCR models on CPU onnxruntime): the default engine on Linux.

It owns one RapidOCR pipeline built from the model files inside the installed ``rapidocr`` wheel, the
mapping of ``OcrOptions`` onto what that pipeline can honour, and the conversion of its output into
``TextLine`` objects whose boxes fit the ink of each line.

What it must never do:

- download anything: every model path is passed explicitly after checking the file is in the wheel, so
  RapidOCR never reaches its download code (which it runs whenever a model path is left unset);
- pass per-call parameters to RapidOCR: its ``__call__`` writes them onto the instance, where they would
  stick for the next request; everything is configured once, at construction;
- write to or keep the image it is given (RapidOCR's own output holds a reference; it is dropped here).

Measured on a 1920×1080 synthetic desktop: 0.07% character error with the angle classifier off and
detection at the image's real size (``limit_type=max``, side 2000); the classifier flips UI lines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import languages
from ..errors import EngineUnavailable, ErrorCode, InvalidRequest
from ..models import OcrOptions, PixelFormat, TextLine
from .base import Engine, EngineOutput
from .results import Quad, drop_short_lines, make_line, sample_image

#: The models shipped inside the rapidocr 3.x wheel (``site-packages/rapidocr/models``).
DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
REC_VERSION = ("PP-OCRv6", "small")

#: ``OcrOptions``' default minimum text height (1/32, Apple Vision's default).


def locate_models(model_dir: str | Path | None = None, use_cls: bool = False) -> dict[str, Path]:
    """The model files this engine will load, checked to exist, or ``EngineUnavailable`` naming the gap.

    Checking first is what keeps RapidOCR off the network: given explicit paths it loads them and never
    calls its downloader.
    """
    if model_dir is None:
        try:
            import rapidocr
        except ImportError as exc:
            raise EngineUnavailable(
                f"engine 'rapidocr' needs the rapidocr package ({exc}): pip install rapidocr onnxruntime"
            ) from exc
        model_dir = Path(rapidocr.__file__).resolve().parent / "models"
    folder = Path(model_dir)
    wanted = {"det": folder / DET_MODEL, "rec": folder / REC_MODEL}
    if use_cls:
        wanted["cls"] = folder / CLS_MODEL
    missing = [str(path) for path in wanted.values() if not path.is_file()]
    if missing:
        raise EngineUnavailable(
            f"rapidocr model files are missing: {', '.join(missing)}. shmbridge never downloads models at "
            "run time; reinstall a rapidocr wheel that ships them (pip install --force-reinstall rapidocr) "
            "or pass model_dir pointing at a folder that holds them"
        )
    return wanted


def rapidocr_language(tag: str) -> str:
    """A BCP-47 tag or Tesseract code (``en-US``, ``zh-Hant``, ``eng``) as RapidOCR's name (``en``, ``chinese_cht``)."""
    return languages.rapidocr_code(tag) or tag


def option_warnings(options: OcrOptions, covered: frozenset[str]) -> list[str]:
    """Say which requested options RapidOCR cannot honour; defaults never produce a warning."""
    warnings: list[str] = []
    if options.recognition_level != "accurate":
        warnings.append(
            f"recognition_level {options.recognition_level!r} is not supported by rapidocr; "
            "it ran at its only level (accurate)"
        )
    unknown = languages.unknown_tags_warning(options.languages)
    if unknown:
        warnings.append(unknown)
    known = [tag for tag in options.languages if languages.parse(tag) is not None]
    uncovered = [tag for tag in known if rapidocr_language(tag) not in covered]
    if uncovered:
        warnings.append(
            f"rapidocr's {REC_VERSION[0]} model does not cover {', '.join(uncovered)}; "
            "text in those languages may be misread"
        )
    if options.custom_words:
        warnings.append("custom_words are not supported by rapidocr")
    return warnings


def fit_to_ink(image: np.ndarray, quad: Quad) -> Quad:
    """Shrink a detector's padded, near-axis-aligned quad to the box of the ink inside it.

    Text detectors pad boxes (DB's unclip), by up to 10 px on short words, so a button label's box would
    reach the button's border. Inside the padded box the background is the median of its outer ring;
    ink is what differs from it by a quarter of the strongest contrast. Rows or columns that are ink
    across the whole box are rules (table grid, a border, an edge between two panels) and are ignored,
    as are ink rows cut off from the line's middle band (a neighbouring line's descenders). The result
    only ever shrinks the quad and is axis-aligned (the detector tilts short words by a few degrees at
    random); a quad tilted by more than 5 degrees, or one with no clear ink, is returned unchanged.
    """
    xs = [float(p[0]) for p in quad]
    ys = [float(p[1]) for p in quad]
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    if width < 4 or height < 4 or _skew(quad) > 0.0875:  # about 5 degrees
        return quad
    x0, y0 = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    x1, y1 = min(image.shape[1], math.ceil(max(xs))), min(image.shape[0], math.ceil(max(ys)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return quad
    region = image[y0:y1, x0:x1].astype(np.int16)
    if region.ndim == 2:
        region = region[:, :, None]
    ring = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
    background = np.median(ring, axis=0)
    contrast = np.abs(region - background).max(axis=2)
    peak = float(contrast.max())
    if peak < 40:
        return quad
    ink = contrast > max(16.0, 0.25 * peak)
    ink[ink.mean(axis=1) >= 0.95, :] = False
    ink[:, ink.mean(axis=0) >= 0.95] = False
    rows = _central_rows(ink.any(axis=1))
    if rows is None:
        return quad
    top, bottom = rows
    cols = np.flatnonzero(ink[top:bottom].any(axis=0))
    if cols.size == 0 or (bottom - top) < 0.2 * (y1 - y0):
        return quad
    left, right = x0 + int(cols[0]), x0 + int(cols[-1]) + 1
    top, bottom = y0 + top, y0 + bottom
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def _skew(quad: Quad) -> float:
    """How far the quad's top edge leans, as |dy/dx|."""
    (ax, ay), (bx, by) = quad[0], quad[1]
    return abs(float(by) - float(ay)) / max(1.0, abs(float(bx) - float(ax)))


def _central_rows(has_ink: np.ndarray) -> tuple[int, int] | None:
    """The span of ink rows joined to the middle of the box (gaps of up to 2 rows bridged)."""
    indices = np.flatnonzero(has_ink)
    if indices.size == 0:
        return None
    runs: list[list[int]] = [[int(indices[0]), int(indices[0]) + 1]]
    for index in indices[1:]:
        if index - runs[-1][1] <= 2:
            runs[-1][1] = int(index) + 1
        else:
            runs.append([int(index), int(index) + 1])
    n = has_ink.size
    band = (0.3 * n, 0.7 * n)
    central = [run for run in runs if run[0] < band[1] and run[1] > band[0]]
    if not central:
        return None
    return central[0][0], central[-1][1]


class RapidOcrEngine(Engine):
    """RapidOCR with the wheel's PP-OCR models, configured once at construction."""

    name: ClassVar[str] = "rapidocr"
    # RapidOCR uses a C-contiguous BGR array as it is; GRAY would be converted inside it (a hidden copy),
    # so the service does that conversion instead, where it is counted.
    native_formats: ClassVar[frozenset[PixelFormat]] = frozenset({PixelFormat.BGR})
    accepts_strides: ClassVar[bool] = False

    def __init__(
        self,
        *,
        max_side: int = 2000,
        text_score: float = 0.5,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
        use_cls: bool = False,
        fit_boxes: bool = True,
        intra_op_threads: int | None = None,
        model_dir: str | Path | None = None,
    ) -> None:
        """``max_side``: detection runs at the image's real size up to this longest side (larger images
        are scaled down); ``use_cls``: the angle classifier, off because it flips UI lines;
        ``fit_boxes``: shrink detector boxes to the ink (see ``fit_to_ink``); ``intra_op_threads``:
        onnxruntime threads per instance (default: onnxruntime's choice)."""
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32, not {max_side}")
        models = locate_models(model_dir, use_cls)
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:  # pragma: no cover - locate_models already imported it
            raise EngineUnavailable(f"engine 'rapidocr' cannot import rapidocr: {exc}") from exc
        params: dict[str, Any] = {
            "Global.use_cls": bool(use_cls),
            "Global.log_level": "warning",
            "Global.text_score": float(text_score),
            "Global.max_side_len": int(max_side),
            "Global.model_root_dir": str(models["det"].parent),
            "Det.limit_type": "max",
            "Det.limit_side_len": int(max_side),
            "Det.box_thresh": float(box_thresh),
            "Det.unclip_ratio": float(unclip_ratio),
            "Det.model_path": str(models["det"]),
            "Rec.model_path": str(models["rec"]),
        }
        if "cls" in models:
            params["Cls.model_path"] = str(models["cls"])
        if intra_op_threads is not None:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = int(intra_op_threads)
        try:
            self._ocr: Any = RapidOCR(params=params)
            covered = RapidOCR.list_supported_langs("rec", *REC_VERSION)
        except Exception as exc:
            raise EngineUnavailable(f"rapidocr failed to start: {exc}") from exc
        self._languages = frozenset(covered) or frozenset({"en"})
        self._fit_boxes = fit_boxes
        self._settings = {
            "max_side": max_side,
            "text_score": text_score,
            "box_thresh": box_thresh,
            "unclip_ratio": unclip_ratio,
            "use_cls": use_cls,
            "fit_boxes": fit_boxes,
        }

    def warm_up(self) -> None:
        """Load the detection and recognition sessions (RapidOCR loads them lazily) on a few words."""
        self.recognize(sample_image(3), PixelFormat.BGR, OcrOptions())

    def recognize(self, image: np.ndarray, pixel_format: PixelFormat, options: OcrOptions) -> EngineOutput:
        if pixel_format is not PixelFormat.BGR or image.ndim != 3 or not image.flags.c_contiguous:
            raise InvalidRequest(
                f"rapidocr takes C-contiguous BGR pixels, not {pixel_format.value} {image.shape}",
                code=ErrorCode.SHAPE_MISMATCH,
            )
        warnings = option_warnings(options, self._languages)
        output = self._ocr(image)  # no keyword arguments: RapidOCR would keep them for later calls
        boxes, texts, scores = output.boxes, getattr(output, "txts", None), getattr(output, "scores", None)
        del output  # it holds a reference to ``image``
        if boxes is None or texts is None or scores is None:
            return EngineOutput(warnings=warnings)
        lines: list[TextLine] = []
        for quad, text, score in zip(boxes, texts, scores, strict=True):
            if not text.strip():
                continue
            points: Quad = [(float(x), float(y)) for x, y in quad]
            if self._fit_boxes:
                points = fit_to_ink(image, points)
            lines.append(make_line(text, min(1.0, max(0.0, float(score))), points))
        lines = drop_short_lines(lines, options.minimum_text_height, image.shape[0])
        return EngineOutput(lines=lines, warnings=warnings)

    def capabilities(self) -> dict[str, Any]:
        return {
            **super().capabilities(),
            "recognition_levels": ["accurate"],
            "languages": languages.bcp47_list(languages.from_rapidocr(code) for code in self._languages),
            "custom_words": False,
            "minimum_text_height": "lines shorter than a minimum above the default 1/32 are dropped",
            **self._settings,
        }

    def close(self) -> None:
        """Drop the onnxruntime sessions; the engine cannot be used afterwards."""
        self._ocr = None
