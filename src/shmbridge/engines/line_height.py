"""The recognition model at any line height: the wheel's model, its input height made free, in memory.

The PP-OCR recognition model in the rapidocr wheel declares its input as ``N×3×48×W``; its layers are
convolutions and attention over the width, so it reads lines scaled to a lower height too, with less work
per line (docs/benchmarks.md measures what each height costs in recall). This module owns making that
height free: the model is read from the wheel with ``onnx``, its input's height dimension renamed to a
symbol, and the bytes handed to onnxruntime, with the recogniser's own session options and providers.

It must never write a model file or download one (the bytes live only in the session), and never change
anything but the declared input height. Only onnxruntime is covered: OpenVINO keeps the model's 48 px
(``free_height`` says whether a session can take another).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_INSTALL = "pip install onnx (a default dependency of shmbridge on Linux)"


def free_height_model(path: Path) -> bytes:
    """The model at ``path`` with its input height a symbol (``H``) instead of a number."""
    import onnx

    model = onnx.load(str(path))
    height = model.graph.input[0].type.tensor_type.shape.dim[2]
    height.ClearField("dim_value")
    height.dim_param = "H"
    return model.SerializeToString()


def free_height(recognizer: Any, backend: str, model_path: Path) -> str | None:
    """Give RapidOCR's ``recognizer`` a session that takes any line height; ``None`` when done, else why
    not (the recogniser keeps the model's own height then)."""
    if backend != "onnxruntime":
        return f"the {backend} backend keeps the model's 48 px line height"
    try:
        model = free_height_model(model_path)
    except ImportError:
        return f"the onnx package is missing ({_INSTALL}): lines are read at the model's 48 px"
    from onnxruntime import InferenceSession

    wrapper = recognizer.session  # RapidOCR's OrtInferSession: it runs ``.session`` by input name
    old = wrapper.session
    wrapper.session = InferenceSession(model, sess_options=old.get_session_options(), providers=old.get_providers())
    return None
