"""Engines chosen by name and imported lazily, so a missing optional extra only matters when asked for.

``ENGINES`` maps a name to ``"module:Class"``; ``create_engine`` imports on demand and turns a missing
dependency into ``EngineUnavailable`` naming the extra to install.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from ..errors import EngineUnavailable
from .base import Engine, EngineOutput

ENGINES: dict[str, str] = {
    "rapidocr": "shmbridge.engines.rapidocr:RapidOcrEngine",
    "tesseract": "shmbridge.engines.tesseract:TesseractEngine",
    "vision": "shmbridge.engines.vision:VisionEngine",
    "null": "shmbridge.engines.null:NullEngine",
}

_INSTALL_HINTS = {
    "tesseract": "pip install 'shmbridge[tesseract]' and apt-get install tesseract-ocr-eng",
    "vision": "pip install 'shmbridge[vision]' (macOS only)",
    "rapidocr": "pip install rapidocr onnxruntime (default dependencies of shmbridge)",
}


def default_workers(name: str) -> int:
    """Engine instances a service runs when the operator does not say (``--workers``).

    RapidOCR shares the CPUs out between inference threads within one request, so one instance per two
    usable CPUs answers a lone client sooner than one instance per CPU, at the same throughput under
    load (docs/benchmarks.md, "What was chosen"; measured on two CPUs). Every other engine gets two, so
    one slow request never holds the only instance.
    """
    if name == "rapidocr":
        from .threads import usable_cpus

        return max(1, usable_cpus() // 2)
    return 2


def default_engine_name() -> str:
    """Apple Vision on macOS, RapidOCR elsewhere."""
    return "vision" if sys.platform == "darwin" else "rapidocr"


def engine_class(name: str) -> type[Engine]:
    try:
        target = ENGINES[name]
    except KeyError:
        raise EngineUnavailable(f"unknown engine {name!r}; choose one of {sorted(ENGINES)}") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = _INSTALL_HINTS.get(name, f"pip install 'shmbridge[{name}]'")
        raise EngineUnavailable(
            f"engine {name!r} needs a package that is not installed ({exc.name or exc}): {hint}"
        ) from exc
    return getattr(module, attr)


def create_engine(name: str, **options: Any) -> Engine:
    """Build one engine instance by registry name with engine-specific options."""
    return engine_class(name)(**options)


__all__ = ["ENGINES", "Engine", "EngineOutput", "create_engine", "default_engine_name", "engine_class"]
