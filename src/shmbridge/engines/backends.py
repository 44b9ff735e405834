"""Inference backends for the PP-OCR models: which ones exist, which is the default, and what to install.

RapidOCR runs the same ONNX models on onnxruntime or on OpenVINO (the ``openvino`` extra). onnxruntime
is the default everywhere: measured in the same runs (docs/benchmarks.md), OpenVINO used about as much
CPU per page once each worker had one thread, at the same recall, and its service's RSS was higher
than today's, which the default may not exceed.

What it must never do: import a backend at module import (each is imported only when asked for), or let
a missing backend surface as an ``ImportError`` from deep inside RapidOCR.
"""

from __future__ import annotations

import importlib.util

from ..errors import EngineUnavailable

#: Backend name (RapidOCR's ``engine_type``) → the module it needs and how to install it.
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("onnxruntime", "pip install onnxruntime (a default dependency of shmbridge)"),
    "openvino": ("openvino", "pip install 'shmbridge[openvino]'"),
}


def installed(backend: str) -> bool:
    """Whether the backend's package can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(BACKENDS[backend][0]) is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules
        return False


#: The backend used when none is named.
DEFAULT_BACKEND = "onnxruntime"


def default_backend() -> str:
    return DEFAULT_BACKEND


def require_backend(backend: str | None) -> str:
    """The backend to use (``None`` means the default), checked to be known and installed."""
    name = default_backend() if backend is None else backend
    if name not in BACKENDS:
        raise EngineUnavailable(f"unknown rapidocr backend {name!r}; choose one of {sorted(BACKENDS)}")
    if not installed(name):
        raise EngineUnavailable(f"rapidocr backend {name!r} needs the {BACKENDS[name][0]} package: {BACKENDS[name][1]}")
    return name
