"""The two-resolution PP-OCR pipeline: detect on a downscaled view, recognise crops of the full frame.

It owns RapidOCR's text detector and recogniser objects (built from explicit model paths, on the chosen
backend) and the steps between them: scaling the frame down for detection, mapping the detector's boxes
back into full-frame pixels, cutting each line's crop from the full-resolution frame (small UI text stays
sharp), recognising the crops in the batches ``line_batches`` plans (at the line height a level asks for,
with the model's height made free by ``line_height``), and timing each stage.

What it must never do:

- download anything: model paths are always explicit and checked by the caller (``locate_models``);
- write to or keep the frame: it reads it, and every crop is a new array;
- decide which options a request may use: ``RapidOcrEngine`` maps a request onto ``detect_side``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .line_batches import MODEL_LINE_HEIGHT, BatchPlan, batches
from .line_height import free_height

#: RapidOCR pads frames this thin (or this much wider than tall) before detection, as RapidOCR does.
_MIN_HEIGHT = 30
_MAX_WIDTH_RATIO = 8


@dataclass(slots=True)
class Detected:
    """Line quads in full-frame pixels (N×4×2, float32), clockwise from top-left, in reading order."""

    boxes: np.ndarray
    scale: float


@dataclass(slots=True)
class PipelineOutput:
    """Quads, texts and scores of the lines read, plus seconds spent per stage."""

    boxes: list[np.ndarray] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    detect_s: float = 0.0
    recognize_s: float = 0.0
    #: Detection's width ÷ the frame's (1: detected at full size).
    scale: float = 1.0


def detection_size(height: int, width: int, longest_side: int) -> tuple[int, int]:
    """The (height, width) the detector sees: scaled so the longest side is at most ``longest_side``
    (never up), then rounded to multiples of 32 as the network needs."""
    scale = min(1.0, longest_side / max(height, width))
    return max(32, round(height * scale / 32) * 32), max(32, round(width * scale / 32) * 32)


def engine_params(
    backend: str,
    models: dict[str, Path],
    *,
    threads: int | None,
    box_thresh: float,
    unclip_ratio: float,
    rec_batch: int,
) -> dict[str, Any]:
    """RapidOCR configuration keys for one backend, every model path explicit."""
    from rapidocr import EngineType

    kind = EngineType(backend)
    params: dict[str, Any] = {
        "Global.log_level": "warning",
        "Global.model_root_dir": str(models["det"].parent),
        "Det.engine_type": kind,
        "Det.model_path": str(models["det"]),
        "Det.box_thresh": float(box_thresh),
        "Det.unclip_ratio": float(unclip_ratio),
        "Rec.engine_type": kind,
        "Rec.model_path": str(models["rec"]),
        "Rec.rec_batch_num": int(rec_batch),
    }
    threads = threads or -1  # None or 0: the runtime's own choice
    if backend == "onnxruntime":
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = int(threads)
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    elif backend == "openvino":
        params["EngineConfig.openvino.inference_num_threads"] = int(threads)
        params["EngineConfig.openvino.performance_hint"] = "LATENCY"
        # Pinning would tie every worker's threads to the same first cores.
        params["EngineConfig.openvino.enable_cpu_pinning"] = "NO"
    return params


class TwoResolutionPipeline:
    """RapidOCR's detector and recogniser with the frame handled at two resolutions."""

    def __init__(self, params: dict[str, Any], heights: frozenset[int] = frozenset({MODEL_LINE_HEIGHT})) -> None:
        """``params``: RapidOCR's configuration keys (``engine_params``); ``heights``: the line heights
        recognition will be asked for (any but the model's own makes its input height free)."""
        from rapidocr.ch_ppocr_det import TextDetector
        from rapidocr.ch_ppocr_rec import TextRecognizer
        from rapidocr.main import DEFAULT_CFG_PATH
        from rapidocr.utils.log import logger
        from rapidocr.utils.parse_parameters import ParseParams

        cfg = ParseParams.update_batch(ParseParams.load(DEFAULT_CFG_PATH), params)
        logger.setLevel(str(cfg.Global.log_level).upper())  # as RapidOCR() itself does
        for section in (cfg.Det, cfg.Rec):
            section.engine_cfg = cfg.EngineConfig[section.engine_type.value]
            section.model_root_dir = cfg.Global.model_root_dir
        cfg.Rec.font_path = None
        self._detector = TextDetector(cfg.Det)
        self._recognizer = TextRecognizer(cfg.Rec)
        #: Why this backend reads lines only at the model's height (``None``: any height works); the
        #: caller then plans at that height.
        self.fixed_height: str | None = None
        if heights != {MODEL_LINE_HEIGHT}:
            self.fixed_height = free_height(self._recognizer, str(cfg.Rec.engine_type.value), Path(cfg.Rec.model_path))

    def detect(self, image: np.ndarray, longest_side: int) -> Detected:
        """Line quads of a BGR frame, detected at most ``longest_side`` wide, in full-frame pixels."""
        import cv2

        height = image.shape[0]
        top, padded = _pad_thin(image)
        det_h, det_w = detection_size(padded.shape[0], padded.shape[1], longest_side)
        shrink = (det_h, det_w) != padded.shape[:2]
        small = cv2.resize(padded, (det_w, det_h), interpolation=cv2.INTER_AREA) if shrink else padded
        # (pixel - 127.5) / 127.5 as one NCHW float32 blob: the detector's own normalisation, in C.
        blob = cv2.dnn.blobFromImage(small, scalefactor=1 / 127.5, mean=(127.5, 127.5, 127.5))
        predictions = self._detector.session(blob)
        boxes, _scores = self._detector.postprocess_op(predictions, padded.shape[:2])
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4, 2)
        if top:
            boxes[:, :, 1] = np.clip(boxes[:, :, 1] - top, 0, height)
        if len(boxes):
            boxes = self._detector.sorted_boxes(boxes)
        return Detected(boxes=boxes, scale=det_w / padded.shape[1])

    def recognize(self, image: np.ndarray, boxes: np.ndarray, plan: BatchPlan,
                  squeeze: float = 1.0) -> tuple[list[str], list[float]]:  # fmt: skip
        """Text and score of each quad, read from crops of the full-resolution ``image`` in ``plan``'s batches.

        ``squeeze`` < 1 narrows each crop before recognition: the recogniser's work grows with a line's
        width at its fixed 48 px height, so a narrower crop reads faster, with fewer time steps per letter.
        """
        import cv2
        from rapidocr.utils.process_img import get_rotate_crop_image

        if len(boxes) == 0:
            return [], []
        crops = [get_rotate_crop_image(image, box.copy()) for box in boxes]
        if squeeze < 1.0:
            crops = [
                cv2.resize(crop, (max(1, round(crop.shape[1] * squeeze)), crop.shape[0]), interpolation=cv2.INTER_AREA)
                for crop in crops
            ]
        texts, scores = [""] * len(crops), [0.0] * len(crops)
        recognizer = self._recognizer
        for batch in batches(crops, plan):
            predictions = recognizer.session(batch.tensor)
            lines, _words = recognizer.postprocess_op(predictions, False, wh_ratio_list=batch.ratios,
                                                       max_wh_ratio=batch.width_ratio)  # fmt: skip
            for index, (text, score) in zip(batch.indices, lines, strict=True):
                texts[index], scores[index] = text, float(score)
        return texts, scores

    def __call__(self, image: np.ndarray, longest_side: int, text_score: float, plan: BatchPlan,
                 squeeze: float = 1.0) -> PipelineOutput:  # fmt: skip
        started = time.perf_counter()
        detected = self.detect(image, longest_side)
        detected_at = time.perf_counter()
        texts, scores = self.recognize(image, detected.boxes, plan, squeeze)
        out = PipelineOutput(
            detect_s=detected_at - started, recognize_s=time.perf_counter() - detected_at, scale=detected.scale
        )
        for box, text, score in zip(detected.boxes, texts, scores, strict=True):
            if score >= text_score and text.strip():
                out.boxes.append(box)
                out.texts.append(text)
                out.scores.append(score)
        return out


def _pad_thin(image: np.ndarray) -> tuple[int, np.ndarray]:
    """A strip thinner than 30 px or over 8× wider than tall, padded above and below with black, as
    RapidOCR pads it (the detector misses text filling a strip); ``(0, image)`` for any other frame."""
    height, width = image.shape[:2]
    if height > _MIN_HEIGHT and width / height <= _MAX_WIDTH_RATIO:
        return 0, image
    import cv2

    target = max(int(width / _MAX_WIDTH_RATIO), _MIN_HEIGHT) * 2
    top = max(0, (target - height) // 2)
    return top, cv2.copyMakeBorder(image, top, top, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
