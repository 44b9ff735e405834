"""The int8 benchmark's model building: a quantised recogniser the real engine loads and reads with.

Timing is the benchmark's business (docs/benchmarks.md); this checks only that the models it compares
are real, complete models: built from the wheel's recogniser, carrying its character list, and read by
the real rapidocr engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the int8 benchmark needs the onnx package (the bench extra)")

from shmbridge.bench.int8 import calibration_lines, quantise
from shmbridge.engines.rapidocr import REC_MODEL, RapidOcrEngine, locate_models
from shmbridge.engines.results import sample_image
from shmbridge.models import OcrOptions, PixelFormat


def test_calibration_lines_are_recogniser_inputs() -> None:
    lines = calibration_lines(6)
    assert len(lines) == 6
    for line in lines:
        assert line.dtype == np.float32
        assert line.shape[:3] == (1, 3, 48) and line.shape[3] >= 48
        assert -1.0 <= float(line.min()) < float(line.max()) <= 1.0


@pytest.mark.parametrize("variant", ["dynamic", "static"])
def test_quantised_recogniser_reads_text(tmp_path: Path, variant: str) -> None:
    import onnx

    source = locate_models()["rec"].parent
    folder = quantise(source, tmp_path, variant, calibration=4)
    model = onnx.load(str(folder / REC_MODEL))
    assert "character" in {prop.key for prop in model.metadata_props}
    assert {node.op_type for node in model.graph.node} & {"DynamicQuantizeLinear", "QuantizeLinear"}
    engine = RapidOcrEngine(model_dir=folder, intra_op_threads=1)
    try:
        output = engine.recognize(sample_image(3), PixelFormat.BGR, OcrOptions())
    finally:
        engine.close()
    assert "Warm" in " ".join(line.text for line in output.lines)
