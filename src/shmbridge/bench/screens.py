"""Real screenshots with word-level truth, and their scorer, for the engines benchmark.

A screens folder (``../shared/fixtures/screens`` by default) holds ``NAME.png`` + ``NAME.json`` pairs, a
``manifest.json`` listing the single frames, and ``score.py``, the folder's own scorer. This module loads
the pages and imports that scorer from the folder, so recall, precision and CER are always the folder's
definition, never a copy of it.

Rules: it only reads the folder; it never writes files and never touches the network.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from ..models import TextLine


def default_screens_dir() -> Path:
    """``../shared/fixtures/screens`` beside the repository root (this file is ``src/shmbridge/bench``)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "screens"


@dataclass(frozen=True)
class Page:
    name: str
    rgb: np.ndarray
    truth: dict[str, Any]

    @property
    def size(self) -> str:
        return f"{self.rgb.shape[1]}x{self.rgb.shape[0]}"


def load_scorer(folder: Path) -> ModuleType:
    """The ``score.py`` of a screens folder, or of the folder holding it (a ``seq-*`` folder uses its
    parent's), as a module: it has ``score(truth, lines)``, ``aggregate(results)`` and ``tokens(text)``."""
    for path in (folder / "score.py", folder.parent / "score.py"):
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"shmbridge_score_{abs(hash(path))}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise FileNotFoundError(f"no score.py in {folder} or {folder.parent}: a screens folder carries its own")


def load_pages(folder: Path, names: list[str] | None = None, size: str | None = "1920x1080") -> list[Page]:
    """The manifest's single frames (those of ``size``, unless None), or exactly ``names`` (file stems)."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    stems = [Path(entry["image"]).stem for entry in manifest["singles"]]
    if names:
        unknown = sorted(set(names) - set(stems))
        if unknown:
            raise ValueError(f"no such pages in {folder}: {', '.join(unknown)}; there are {', '.join(stems)}")
        stems = [stem for stem in stems if stem in names]
    pages = []
    for stem in stems:
        with Image.open(folder / f"{stem}.png") as image:
            rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        page = Page(stem, rgb, json.loads((folder / f"{stem}.json").read_text(encoding="utf-8")))
        if names or size is None or page.size == size:
            pages.append(page)
    return pages


def scored_lines(lines: list[TextLine]) -> list[dict[str, Any]]:
    """Result lines in the scorer's shape."""
    return [{"text": line.text, "x": line.box.x, "y": line.box.y, "w": line.box.width, "h": line.box.height}
            for line in lines]  # fmt: skip
