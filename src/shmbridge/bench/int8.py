"""``python -m shmbridge.bench.int8``: is an int8 recognition model worth adopting? Built here, measured here.

It quantises the recognition model shipped in the rapidocr wheel two ways, with onnxruntime's own tools:

- ``dynamic``: weights int8, activations quantised at run time (``quantize_dynamic``);
- ``static``: QDQ with per-channel weights, activations calibrated on line images this module draws
  itself with OpenCV's fonts (never on the pages it then scores, so the score is not tuned to them).

Then it reads the same pages with the float model and each int8 model (same detector, one inference thread
each, taking turns page by page so a machine that gets busier slows every row alike) and prints, per model,
the recognition stage's median and total seconds, its ratio to the float model, and recall, precision and
CER from the screens folder's own ``score.py``. The issue's rule: adopt int8 only if recall stays within
0.5 points.

What it must never do: download anything (the models come from the installed wheel) or write outside the
temporary folder it creates and removes. It needs the ``onnx`` package (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engines.rapidocr import DET_MODEL, REC_MODEL, RapidOcrEngine, locate_models
from ..models import OcrOptions, PixelFormat
from .screens import default_screens_dir, load_pages, load_scorer, scored_lines

FLOAT = "float"
VARIANTS = ("dynamic", "static")
#: The recogniser's input height (PP-OCR recognition models take 48-pixel-high lines).
_LINE_HEIGHT = 48
_CALIBRATION_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "Settings", "Save",
                      "Cancel", "File", "Edit", "View", "Help", "12:45", "import", "os", "path()", "=", "{}",
                      "[x]", "Submit", "user@example.com", "Search", "Docs", "API", "v1", "200", "OK", "3.14",
                      "Next", "Previous", "Sign", "in")  # fmt: skip


def calibration_lines(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` normalised NCHW line tensors of dark-on-light and light-on-dark drawn text."""
    import cv2

    rng = np.random.default_rng(seed)
    tensors = []
    for index in range(count):
        text = " ".join(rng.choice(_CALIBRATION_WORDS, size=int(rng.integers(1, 7))))
        scale = float(rng.uniform(0.5, 1.2))
        (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        dark_on_light = index % 2 == 0
        image = np.full((height + 12, width + 12, 3), 250 if dark_on_light else 30, np.uint8)
        ink = (20, 20, 20) if dark_on_light else (230, 230, 230)
        cv2.putText(image, text, (6, height + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 1, cv2.LINE_AA)
        resized_width = max(_LINE_HEIGHT, round(image.shape[1] * _LINE_HEIGHT / image.shape[0]))
        line = cv2.resize(image, (resized_width, _LINE_HEIGHT)).astype(np.float32)
        tensors.append(((line / 127.5) - 1.0).transpose(2, 0, 1)[np.newaxis])  # the recogniser's scaling
    return tensors


def quantise(source: Path, folder: Path, variant: str, calibration: int) -> Path:
    """A model folder holding the wheel's detector and ``variant`` of its recogniser, under ``folder``."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source / REC_MODEL))
    metadata = {prop.key: prop.value for prop in model.metadata_props}  # the character list lives here
    upgraded = folder / "rec-opset13.onnx"  # per-channel QDQ needs opset 13
    onnx.save(version_converter.convert_version(model, 13), str(upgraded))
    prepared = folder / "rec-prepared.onnx"
    quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
    target = folder / variant
    target.mkdir()
    (target / DET_MODEL).symlink_to(source / DET_MODEL)
    output = target / REC_MODEL
    if variant == "dynamic":
        quantize_dynamic(str(prepared), str(output), weight_type=QuantType.QInt8)
    else:
        input_name = onnx.load(str(prepared)).graph.input[0].name

        class Lines(CalibrationDataReader):
            def __init__(self) -> None:
                self._items: Iterator[np.ndarray] = iter(calibration_lines(calibration))

            def get_next(self) -> dict[str, np.ndarray] | None:
                line = next(self._items, None)
                return None if line is None else {input_name: line}

        quantize_static(str(prepared), str(output), Lines(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    quantised = onnx.load(str(output))
    del quantised.metadata_props[:]
    for key, value in metadata.items():
        quantised.metadata_props.add(key=key, value=value)
    onnx.save(quantised, str(output))
    return target


def compare(
    engines: dict[str, RapidOcrEngine], pages: Sequence[Any], rounds: int, score: Callable[..., dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Recognition seconds per page (all rounds) and the first round's scores, per model."""
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    scores: dict[str, list[dict[str, Any]]] = {name: [] for name in engines}
    for round_index in range(rounds):
        for page in pages:
            bgr = np.ascontiguousarray(page.rgb[:, :, ::-1])
            for name, engine in engines.items():
                output = engine.recognize(bgr, PixelFormat.BGR, OcrOptions())
                seconds[name].append(output.stages.get("recognize", 0.0))
                if round_index == 0:
                    scores[name].append(score(page.truth, scored_lines(output.lines)))
    return {name: {"seconds": seconds[name], "scores": scores[name]} for name in engines}


def report(measured: dict[str, dict[str, Any]], aggregate: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> str:
    reference = statistics.median(measured[FLOAT]["seconds"])
    rows = ["| model | recognise p50 s | total s | x float | recall | precision | CER |", "|---" * 7 + "|"]
    for name, data in measured.items():
        median = statistics.median(data["seconds"])
        total = aggregate(data["scores"])
        rows.append(f"| {name} | {median:.3f} | {sum(data['seconds']):.2f} | {reference / median:.2f} | "
                    f"{total['recall']:.4f} | {total['precision']:.4f} | {100 * total['cer']:.2f} % |")  # fmt: skip
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench.int8", description=__doc__.splitlines()[0])
    parser.add_argument("--screens", type=Path, default=default_screens_dir(), help="a screens folder")
    parser.add_argument("--pages", default="", help="comma-separated page names (default: every 1920x1080 page)")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the pages")
    parser.add_argument("--calibration", type=int, default=48, help="drawn lines for the static variant")
    args = parser.parse_args(argv)
    try:
        import onnx  # noqa: F401
    except ImportError:
        print("the int8 benchmark needs the onnx package: pip install 'shmbridge[bench]'", file=sys.stderr)
        return 2
    print("$ python -m shmbridge.bench.int8 " + shlex.join(list(argv if argv is not None else sys.argv[1:])))
    pages = load_pages(args.screens, [name for name in args.pages.split(",") if name] or None)
    scorer = load_scorer(args.screens)
    source = locate_models()["rec"].parent
    with tempfile.TemporaryDirectory(prefix="shmbridge-int8-") as scratch:
        folders = {FLOAT: source}
        for name in VARIANTS:
            folders[name] = quantise(source, Path(scratch), name, args.calibration)
        engines = {name: RapidOcrEngine(model_dir=folder, intra_op_threads=1) for name, folder in folders.items()}
        for engine in engines.values():
            engine.warm_up()
        measured = compare(engines, pages, args.rounds, scorer.score)
        for engine in engines.values():
            engine.close()
    print(report(measured, scorer.aggregate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
