"""Inference backends for the PP-OCR models: which ones exist, which is the default, and what to install.

RapidOCR runs the same ONNX models on onnxruntime or on OpenVINO. OpenVINO is the default on x86-64
Linux, where it is installed with shmbridge's default dependencies (docs/benchmarks.md has the figures
that chose it); onnxruntime everywhere else. The default falls back to onnxruntime when OpenVINO
cannot be imported, so a trimmed install still starts.

What it must never do: import a backend at module import (each is imported only when asked for), or let
a missing backend surface as an ``ImportError`` from deep inside RapidOCR.
"""

from __future__ import annotations

import importlib.util
import platform
import sys

from ..errors import EngineUnavailable

#: Backend name (RapidOCR's ``engine_type``) → the module it needs and how to install it.
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("onnxruntime", "pip install onnxruntime (a default dependency of shmbridge)"),
    "openvino": ("openvino", "pip install 'shmbridge[openvino]'"),
}


def openvino_is_default_platform() -> bool:
    """x86-64 Linux, where OpenVINO is a default dependency."""
    return sys.platform == "linux" and platform.machine().lower() in ("x86_64", "amd64")


def installed(backend: str) -> bool:
    """Whether the backend's package can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(BACKENDS[backend][0]) is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules
        return False


def default_backend() -> str:
    """OpenVINO on x86-64 Linux when it is installed, else onnxruntime."""
    if openvino_is_default_platform() and installed("openvino"):
        return "openvino"
    return "onnxruntime"


def require_backend(backend: str | None) -> str:
    """The backend to use (``None`` means the default), checked to be known and installed."""
    name = default_backend() if backend is None else backend
    if name not in BACKENDS:
        raise EngineUnavailable(f"unknown rapidocr backend {name!r}; choose one of {sorted(BACKENDS)}")
    if not installed(name):
        raise EngineUnavailable(f"rapidocr backend {name!r} needs the {BACKENDS[name][0]} package: {BACKENDS[name][1]}")
    return name
