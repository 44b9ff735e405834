"""Line crops into the recogniser's batches: each crop's margin and size, and crops of like shape together.

The PP-OCR recogniser reads a batch as one ``N×3×H×W`` tensor: every crop is scaled to the line height
``H`` and padded on the right to the widest crop of its batch, so its work grows with ``N × W``. RapidOCR
batches crops in order of aspect ratio, a fixed number at a time, and never narrower than 320 px: on a
screen, where one batch can hold a 3-letter button and a 60-letter sentence, much of each tensor is padding.
This module owns the plan that wastes less, and the one float32 tensor each batch becomes:

- a margin above and below each crop (``margin``, a factor of its height; the edge rows repeated): the
  detector's boxes hug the ink, and the recogniser reads a line better with a little room around it;
- each crop padded to a width of its own (``invariant``, the default): the least of a fixed ladder of
  widths, each ``tolerance`` times the one before, that holds it; crops of one width share batches of
  at most ``max_lines``. A crop's tensor then depends on that crop alone, so a line reads the same
  whatever else is on the screen: a screen stream's crop of three lines reads them as the full frame
  does (the padding a batch-mate forces on a line changes what the recogniser reads at its end);
- or, with ``invariant=False`` (RapidOCR's way, kept for the reference row of the engines benchmark),
  crops sorted by aspect ratio, and a batch closed when the next crop is more than ``tolerance`` wider
  than the batch's first or the batch holds ``max_lines``, padded to its widest;
- a floor on the aspect ratio (``floor``), so a tiny crop is still a shape the network reads well,
  lower than RapidOCR's (3 against 6.7).

docs/benchmarks.md has the measurements behind the defaults. This module must never run a model, decide
which lines exist, or keep a crop past the call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

#: The line height the wheel's recognition model was trained for (its input is ``N×3×48×W``).
MODEL_LINE_HEIGHT = 48


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """How crops become batches: the line height, the margin, and how batches are grouped."""

    height: int = MODEL_LINE_HEIGHT
    margin: float = 1.15
    tolerance: float = 1.1
    max_lines: int = 16
    floor: float = 3.0
    invariant: bool = True

    def __post_init__(self) -> None:
        if not 16 <= self.height <= 96:
            raise ValueError(f"the recognition line height must lie in [16, 96] px, not {self.height}")
        if not 1.0 <= self.margin <= 2.0:
            raise ValueError(f"the line margin must lie in [1, 2] (a factor of the crop's height), not {self.margin}")
        if self.tolerance < 1.0 or self.max_lines < 1 or self.floor <= 0:
            raise ValueError("a batch needs tolerance >= 1, max_lines >= 1 and floor > 0")


@dataclass(frozen=True, slots=True)
class Batch:
    """Some crops' indices, their aspect ratios, and the tensor they make."""

    indices: list[int]
    ratios: list[float]
    width_ratio: float  # the tensor's width ÷ height
    tensor: np.ndarray


def with_margin(crop: np.ndarray, margin: float) -> np.ndarray:
    """``crop`` with ``(margin - 1) / 2`` of its height added above and below (edge rows repeated)."""
    extra = round(crop.shape[0] * (margin - 1.0) / 2)
    if extra <= 0:
        return crop
    import cv2

    return cv2.copyMakeBorder(crop, extra, extra, 0, 0, cv2.BORDER_REPLICATE)


def ladder_ratio(ratio: float, plan: BatchPlan) -> float:
    """The width ÷ height a crop of aspect ``ratio`` is padded to under an invariant plan: the least rung
    of ``floor × tolerance**k`` (k = 0, 1, ...) that holds it. It depends on the crop alone."""
    if ratio <= plan.floor or plan.tolerance == 1.0:
        return max(ratio, plan.floor)
    rung = math.ceil(math.log(ratio / plan.floor) / math.log(plan.tolerance) - 1e-9)
    return max(ratio, plan.floor * plan.tolerance**rung)  # max: a rounding error never cuts the crop


def batches(crops: Sequence[np.ndarray], plan: BatchPlan) -> Iterator[Batch]:
    """The crops (BGR, any size) as batches ready for the recogniser, in order of aspect ratio."""
    framed = [with_margin(crop, plan.margin) for crop in crops]
    ratios = [crop.shape[1] / crop.shape[0] for crop in framed]
    order = sorted(range(len(framed)), key=ratios.__getitem__)
    if plan.invariant:
        yield from _laddered(framed, ratios, order, plan)
        return
    start = 0
    while start < len(order):
        first = max(ratios[order[start]], plan.floor)
        end = start + 1
        while (end < len(order) and end - start < plan.max_lines
               and max(ratios[order[end]], plan.floor) <= first * plan.tolerance):  # fmt: skip
            end += 1
        indices = order[start:end]
        width_ratio = max(plan.floor, ratios[indices[-1]])
        yield Batch(indices, [ratios[i] for i in indices], width_ratio,
                    tensor_of([framed[i] for i in indices], plan.height, width_ratio))  # fmt: skip
        start = end


def _laddered(framed: list[np.ndarray], ratios: list[float], order: list[int], plan: BatchPlan) -> Iterator[Batch]:
    """Batches of crops padded to the same rung of the ladder, at most ``max_lines`` each."""
    rungs = [ladder_ratio(ratio, plan) for ratio in ratios]
    start = 0
    while start < len(order):
        width_ratio = rungs[order[start]]
        end = start + 1
        while end < len(order) and end - start < plan.max_lines and rungs[order[end]] == width_ratio:
            end += 1
        indices = order[start:end]
        yield Batch(indices, [ratios[i] for i in indices], width_ratio,
                    tensor_of([framed[i] for i in indices], plan.height, width_ratio))  # fmt: skip
        start = end


def tensor_of(crops: Sequence[np.ndarray], height: int, width_ratio: float) -> np.ndarray:
    """One ``N×3×height×W`` float32 tensor: each crop scaled to ``height`` (its aspect kept, at most ``W``
    wide), normalised to [-1, 1] as the model was trained, and the rest of its row left at 0."""
    import cv2

    width = math.ceil(height * width_ratio)
    tensor = np.zeros((len(crops), 3, height, width), dtype=np.float32)
    for n, crop in enumerate(crops):
        scaled_width = max(1, min(width, math.ceil(height * crop.shape[1] / crop.shape[0])))
        scaled = cv2.resize(crop, (scaled_width, height))
        # (pixel / 255 - 0.5) / 0.5, channel first: the normalisation the model was trained with
        tensor[n, :, :, :scaled_width] = scaled.transpose(2, 0, 1) * (1 / 127.5) - 1.0
    return tensor
