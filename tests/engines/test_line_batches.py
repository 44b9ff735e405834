"""Line crops into recognition batches (``line_batches``) and the recognition model at a free line height
(``line_height``): the pure planning, the tensor the model reads, and the real model from the wheel."""

from __future__ import annotations

import numpy as np
import pytest

from shmbridge.engines.line_batches import (
    MODEL_LINE_HEIGHT,
    BatchPlan,
    batches,
    ladder_ratio,
    tensor_of,
    with_margin,
)
from shmbridge.engines.line_height import free_height_model
from shmbridge.engines.rapidocr import locate_models


def _crop(height: int, width: int, value: int = 200) -> np.ndarray:
    crop = np.full((height, width, 3), value, dtype=np.uint8)
    crop[height // 3 : 2 * height // 3, 1:-1] = 20  # a dark band: the "ink"
    return crop


def test_a_margin_repeats_the_edge_rows_above_and_below() -> None:
    crop = _crop(20, 50)
    framed = with_margin(crop, 1.2)
    assert framed.shape == (24, 50, 3)
    assert (framed[:2] == crop[0]).all() and (framed[-2:] == crop[-1]).all()
    assert (framed[2:-2] == crop).all()
    assert with_margin(crop, 1.0) is crop


def test_batches_group_crops_of_like_shape_and_keep_every_index_once() -> None:
    """RapidOCR's way (``invariant=False``): a batch is padded to its widest crop."""
    widths = [30, 600, 32, 610, 300, 31, 305, 1200]
    crops = [_crop(20, width) for width in widths]
    plan = BatchPlan(margin=1.0, tolerance=1.1, max_lines=2, floor=3.0, invariant=False)
    planned = list(batches(crops, plan))
    seen = sorted(index for batch in planned for index in batch.indices)
    assert seen == list(range(len(crops)))
    for batch in planned:
        assert len(batch.indices) <= 2
        assert batch.width_ratio == max(plan.floor, max(batch.ratios))
        assert min(batch.ratios) * plan.tolerance >= max(batch.ratios) or max(batch.ratios) <= plan.floor
        assert batch.tensor.shape[:3] == (len(batch.indices), 3, plan.height)
    # The three narrow crops sit under the floor together, the wide one alone.
    assert [sorted(b.indices) for b in planned if 7 in b.indices] == [[7]]


def test_the_ladder_gives_each_crop_a_width_of_its_own_within_the_tolerance() -> None:
    plan = BatchPlan(tolerance=1.1, floor=3.0)
    assert ladder_ratio(0.5, plan) == ladder_ratio(3.0, plan) == 3.0  # the floor is the first rung
    rungs = {ladder_ratio(ratio, plan) for ratio in np.linspace(3.0, 60.0, 2000)}
    for ratio in np.linspace(3.01, 60.0, 500):
        rung = ladder_ratio(ratio, plan)
        assert ratio <= rung < ratio * plan.tolerance + 1e-9 and rung in rungs
    assert len(rungs) < 40  # a ladder, not a width per crop: like crops still share batches


def test_a_crops_tensor_does_not_depend_on_what_shares_its_batch() -> None:
    """The invariant plan (the default): the same crop, batched alone or among others, becomes the same
    rows of input, so the recogniser reads it the same (a stream's crop reads a line as the full frame)."""
    plan = BatchPlan(max_lines=4)
    line = _crop(20, 300, value=180)
    others = [_crop(20, width) for width in (310, 320, 290, 30, 900, 305, 315)]

    def rows_of(crops: list[np.ndarray], index: int) -> np.ndarray:
        for batch in batches(crops, plan):
            if index in batch.indices:
                return batch.tensor[batch.indices.index(index)]
        raise AssertionError("the crop is in no batch")

    alone = rows_of([line], 0)
    among = rows_of([*others[:3], line, *others[3:]], 3)
    assert alone.shape == among.shape and (alone == among).all()
    # RapidOCR's way pads it to a wider batch-mate: other rows.
    old = BatchPlan(max_lines=4, invariant=False)
    widths = {batch.tensor.shape[3] for batch in batches([*others[:3], line], old)}
    assert max(widths) > alone.shape[2]


def test_the_tensor_is_normalised_to_minus_one_one_and_padded_with_zero() -> None:
    crop = _crop(24, 48)  # aspect 2: scaled to 96 px wide at height 48
    tensor = tensor_of([crop], MODEL_LINE_HEIGHT, 4.0)
    assert tensor.shape == (1, 3, 48, 192) and tensor.dtype == np.float32
    ink = tensor[0, :, :, :96]
    assert ink.min() >= -1.0 and ink.max() <= 1.0
    assert np.isclose(ink[:, 0, 48], 200 / 127.5 - 1).all()  # the background row, normalised
    assert (tensor[0, :, :, 96:] == 0).all()  # padding right of the line


def test_a_plan_refuses_a_height_or_margin_out_of_range() -> None:
    with pytest.raises(ValueError, match="line height"):
        BatchPlan(height=8)
    with pytest.raises(ValueError, match="margin"):
        BatchPlan(margin=3.0)


def test_the_wheels_model_reads_lines_at_a_lower_height_once_its_height_is_free() -> None:
    import onnx
    import onnxruntime as ort

    path = locate_models()["rec"]
    fixed = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[2]
    assert fixed.dim_value == MODEL_LINE_HEIGHT  # the wheel's model declares 48
    model = free_height_model(path)
    assert onnx.load_from_string(model).graph.input[0].type.tensor_type.shape.dim[2].dim_param == "H"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    steps = {}
    for height in (48, 40):
        (logits,) = session.run(None, {name: np.zeros((1, 3, height, 320), dtype=np.float32)})
        steps[height] = logits.shape[1]
        assert logits.shape[0] == 1 and logits.shape[2] > 1000  # the character set's scores per time step
    # One time step per 8 px of width at any height: a line scaled to 40 px is 40/48 as wide, so fewer.
    assert steps[40] == steps[48] == 320 // 8
    assert path.read_bytes() != model  # the wheel's file is untouched: the free model lives in memory
