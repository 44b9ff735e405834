"""RapidOCR (PP-OCR models on CPU, onnxruntime or OpenVINO): the default engine on Linux.

It owns the mapping of ``OcrOptions`` onto what the PP-OCR pipeline (``ppocr.py``) can honour (the
recognition level picks the detection side), where the model files come from (the installed ``rapidocr``
wheel, checked first), and the conversion of the pipeline's output into ``TextLine`` objects whose boxes
fit the ink of each line.

What it must never do:

- download anything: every model path is passed explicitly after checking the file is in the wheel, so
  RapidOCR never reaches its download code (which it runs whenever a model path is left unset);
- change its configuration per call: everything is configured once, at construction, and a request only
  chooses between the two levels' settings;
- write to or keep the image it is given.

The angle classifier stays off: it flips UI lines. docs/benchmarks.md has the measurements behind the
defaults below.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .. import languages
from ..errors import EngineUnavailable, ErrorCode, InvalidRequest
from ..models import DEFAULT_OPTIONS, OcrOptions, PixelFormat, TextLine
from .backends import require_backend
from .base import Engine, EngineOutput
from .line_batches import MODEL_LINE_HEIGHT, BatchPlan
from .ppocr import Detected, TwoResolutionPipeline, engine_params
from .results import Quad, drop_short_lines, is_drawn_shape, make_line, sample_image

#: The models shipped inside the rapidocr 3.x wheel (``site-packages/rapidocr/models``).
DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
REC_VERSION = ("PP-OCRv6", "small")

#: Detection's longest side per recognition level, chosen by measurement (docs/benchmarks.md): ``accurate``
#: detects a 1920×1080 frame at full size (a box found at 1280 px can stop inside the ink, and the box
#: fitting only shrinks), ``fast`` at 1280 px: with lines read at ``FAST_LINE_HEIGHT``, boxes found at
#: 1088 px lost words that 1280 keeps, for little more detection time.
ACCURATE_DETECT_SIDE = 2000
FAST_DETECT_SIDE = 1280
#: How much ``fast`` narrows line crops before recognition: not at all, as measured (narrowing alone
#: loses words where a lower line height does not); the option stays for experiments.
FAST_SQUEEZE = 1.0
#: The line height each level recognises at: the model's own 48 px for ``accurate``; ``fast`` scales
#: lines to 40 px, which costs a fraction of a point of recall for a third less work per line.
ACCURATE_LINE_HEIGHT = MODEL_LINE_HEIGHT
FAST_LINE_HEIGHT = 40
#: Room added above and below each line crop before recognition, as a factor of its height: boxes
#: detected at full size hug the ink, and a little room reads them better (more does not); boxes
#: detected downscaled (``fast``) are loose already, and more room there loses words.
LINE_MARGIN = 1.15
FAST_LINE_MARGIN = 1.0
#: At most this many lines share one recognition batch; a batch closes when the next line (in order of
#: shape) is more than ``BATCH_TOLERANCE`` times wider for its height than its first, and no batch is
#: narrower than ``BATCH_FLOOR`` times its height (line_batches; RapidOCR's own batching is 6 lines,
#: any tolerance, a floor of 320/48).
REC_BATCH = 16
BATCH_TOLERANCE = 1.1
BATCH_FLOOR = 3.0
_INSTALL = "pip install rapidocr onnxruntime (default dependencies of shmbridge)"


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


class _Level(NamedTuple):
    """What one recognition level does: detect at ``detect_side``, narrow crops by ``squeeze``, batch and
    scale lines as ``plan`` says."""

    detect_side: int
    squeeze: float
    plan: BatchPlan


class RapidOcrEngine(Engine):
    """RapidOCR's PP-OCR models in the two-resolution pipeline, configured once at construction.

    One instance serves both recognition levels with the same loaded models: ``accurate`` detects with
    the longest side at ``detect_side``, ``fast`` at ``fast_detect_side`` (docs/benchmarks.md has the
    measurements that chose both). Recognition always reads crops of the full-resolution frame.
    """

    name: ClassVar[str] = "rapidocr"
    # RapidOCR uses a C-contiguous BGR array as it is; GRAY would be converted inside it (a hidden copy),
    # so the service does that conversion instead, where it is counted.
    native_formats: ClassVar[frozenset[PixelFormat]] = frozenset({PixelFormat.BGR})
    accepts_strides: ClassVar[bool] = False
    thread_option: ClassVar[str | None] = "intra_op_threads"

    def __init__(
        self,
        *,
        detect_side: int = ACCURATE_DETECT_SIDE,
        fast_detect_side: int = FAST_DETECT_SIDE,
        fast_squeeze: float = FAST_SQUEEZE,
        max_side: int | None = None,
        backend: str | None = None,
        text_score: float = 0.5,
        box_thresh: float = 0.5,
        unclip_ratio: float = 1.6,
        rec_batch: int = REC_BATCH,
        line_height: int = ACCURATE_LINE_HEIGHT,
        fast_line_height: int = FAST_LINE_HEIGHT,
        line_margin: float = LINE_MARGIN,
        fast_line_margin: float = FAST_LINE_MARGIN,
        batch_tolerance: float = BATCH_TOLERANCE,
        batch_floor: float = BATCH_FLOOR,
        batch_invariant: bool = True,
        use_cls: bool = False,
        fit_boxes: bool = True,
        intra_op_threads: int | None = None,
        model_dir: str | Path | None = None,
    ) -> None:
        """``detect_side``: detection's longest side for ``accurate`` (frames smaller are detected at
        their own size; ``max_side`` is its old name); ``fast_detect_side``: the same for ``fast``;
        ``fast_squeeze``: how much ``fast`` narrows line crops before recognising them (1 = not at all);
        ``line_height``, ``fast_line_height``: the height lines are scaled to for recognition at each
        level (the model's own is 48; onnxruntime only, OpenVINO keeps 48); ``line_margin``,
        ``fast_line_margin``: room added above and below each line crop, as a factor of its height;
        ``rec_batch``, ``batch_tolerance``, ``batch_floor``, ``batch_invariant``: how lines are batched
        for recognition (see ``line_batches.BatchPlan``; invariant: a line reads the same whatever shares
        its batch); ``backend``: ``onnxruntime`` or
        ``openvino`` (default: ``backends.default_backend()``); ``fit_boxes``: shrink detector boxes to
        the ink (see ``fit_to_ink``); ``intra_op_threads``: inference threads per instance (the service
        sets it from the thread budget; 0: the runtime's own choice, a thread per core); ``use_cls``: must
        stay off, the angle classifier flips UI lines and is not part of the pipeline."""
        if max_side is not None:
            detect_side = max_side
        accurate_label = "detect_side" if max_side is None else "max_side"
        for label, side in ((accurate_label, detect_side), ("fast_detect_side", fast_detect_side)):
            if side < 32:
                raise ValueError(f"{label} must be at least 32, not {side}")
        if not 0.2 <= fast_squeeze <= 1.0:
            raise ValueError(f"fast_squeeze must lie in [0.2, 1], not {fast_squeeze}")
        if use_cls:
            raise ValueError("use_cls is not supported: the angle classifier flips UI lines")
        if intra_op_threads is not None and intra_op_threads < 0:
            raise ValueError(f"intra_op_threads must be 0 (the runtime's own choice) or more, not {intra_op_threads}")
        grouping = {"max_lines": rec_batch, "tolerance": batch_tolerance, "floor": batch_floor,
                    "invariant": batch_invariant}  # fmt: skip
        plans = {"accurate": BatchPlan(height=line_height, margin=line_margin, **grouping),
                 "fast": BatchPlan(height=fast_line_height, margin=fast_line_margin, **grouping)}  # fmt: skip
        chosen = require_backend(backend)
        models = locate_models(model_dir)
        try:
            from rapidocr import RapidOCR

            params = engine_params(chosen, models, threads=intra_op_threads, box_thresh=box_thresh,
                                   unclip_ratio=unclip_ratio, rec_batch=rec_batch)  # fmt: skip
            heights = frozenset(plan.height for plan in plans.values())
            self._pipeline: TwoResolutionPipeline | None = TwoResolutionPipeline(params, heights)
            if self._pipeline.fixed_height is not None:  # this backend reads every line at the model's height
                plans = {level: replace(plan, height=MODEL_LINE_HEIGHT) for level, plan in plans.items()}
            covered = RapidOCR.list_supported_langs("rec", *REC_VERSION)
        except ImportError as exc:
            raise EngineUnavailable(f"engine 'rapidocr' cannot import {exc.name or exc}: {_INSTALL}") from exc
        except Exception as exc:
            raise EngineUnavailable(f"rapidocr failed to start on {chosen}: {exc}") from exc
        self._languages = frozenset(covered) or frozenset({"en"})
        self._levels = {"accurate": _Level(detect_side, 1.0, plans["accurate"]),
                        "fast": _Level(fast_detect_side, fast_squeeze, plans["fast"])}  # fmt: skip
        self._text_score = text_score
        self._fit_boxes = fit_boxes
        self._settings = {
            "backend": chosen,
            "detect_side": detect_side,
            "fast_detect_side": fast_detect_side,
            "fast_squeeze": fast_squeeze,
            "text_score": text_score,
            "box_thresh": box_thresh,
            "unclip_ratio": unclip_ratio,
            "rec_batch": rec_batch,
            "line_height": line_height,
            "fast_line_height": fast_line_height,
            "line_margin": line_margin,
            "fast_line_margin": fast_line_margin,
            "batch_tolerance": batch_tolerance,
            "batch_floor": batch_floor,
            "batch_invariant": batch_invariant,
            "line_height_fixed": self._pipeline.fixed_height,
            "use_cls": False,
            "fit_boxes": fit_boxes,
            "intra_op_threads": intra_op_threads,
        }

    def warm_up(self) -> None:
        """Run the detection and recognition sessions once on a few words (first runs are slow)."""
        self.recognize(sample_image(3), PixelFormat.BGR, OcrOptions())

    def detect_side_for(self, options: OcrOptions) -> int:
        """Detection's longest side for this request's recognition level."""
        return self._levels[options.recognition_level].detect_side

    def line_height_for(self, options: OcrOptions) -> int:
        """The height this request's recognition level scales lines to (the model's own when the backend
        cannot take another)."""
        return self._levels[options.recognition_level].plan.height

    def squeeze_for(self, options: OcrOptions) -> float:
        """How much this request's recognition level narrows line crops before recognition."""
        return self._levels[options.recognition_level].squeeze

    def detect(self, image: np.ndarray, longest_side: int) -> Detected:
        """Only the detection stage, on a BGR frame: line quads in full-frame pixels."""
        return self._open().detect(image, longest_side)

    def read_boxes(self, image: np.ndarray, boxes: np.ndarray, options: OcrOptions = DEFAULT_OPTIONS) -> list[str]:
        """Only the recognition stage: the text of each quad (N×4×2, full-frame pixels) of a BGR frame,
        read as this request's level reads lines."""
        level = self._levels[options.recognition_level]
        return self._open().recognize(image, boxes, level.plan, level.squeeze)[0]

    def _open(self) -> TwoResolutionPipeline:
        if self._pipeline is None:
            raise EngineUnavailable("this rapidocr engine was closed")
        return self._pipeline

    def recognize(self, image: np.ndarray, pixel_format: PixelFormat, options: OcrOptions) -> EngineOutput:
        if pixel_format is not PixelFormat.BGR or image.ndim != 3 or not image.flags.c_contiguous:
            raise InvalidRequest(
                f"rapidocr takes C-contiguous BGR pixels, not {pixel_format.value} {image.shape}",
                code=ErrorCode.SHAPE_MISMATCH,
            )
        pipeline = self._open()
        warnings = option_warnings(options, self._languages)
        level = self._levels[options.recognition_level]
        read = pipeline(image, level.detect_side, self._text_score, level.plan, level.squeeze)
        started = time.perf_counter()
        lines: list[TextLine] = []
        for box, text, score in zip(read.boxes, read.texts, read.scores, strict=True):
            if is_drawn_shape(text):  # a cursor or a bullet square read alone: not a line of text
                continue
            points: Quad = [(float(x), float(y)) for x, y in box]
            if self._fit_boxes:
                points = fit_to_ink(image, points)
            lines.append(make_line(text, min(1.0, max(0.0, score)), points))
        lines = drop_short_lines(lines, options.minimum_text_height, image.shape[0])
        stages = {"detect": read.detect_s, "recognize": read.recognize_s, "postprocess": time.perf_counter() - started}
        return EngineOutput(lines=lines, warnings=warnings, stages=stages)

    def capabilities(self) -> dict[str, Any]:
        return {
            **super().capabilities(),
            "recognition_levels": ["accurate", "fast"],
            "languages": languages.bcp47_list(languages.from_rapidocr(code) for code in self._languages),
            "custom_words": False,
            "minimum_text_height": "lines shorter than a minimum above the default 1/32 are dropped",
            **self._settings,
        }

    def close(self) -> None:
        """Drop the inference sessions; the engine cannot be used afterwards."""
        self._pipeline = None
