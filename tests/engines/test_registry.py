"""The engine registry: names resolve lazily, the platform picks the default, and a missing extra or an
unknown name becomes an ``EngineUnavailable`` that says what to do."""

from __future__ import annotations

import sys

import pytest

from shmbridge.engines import ENGINES, create_engine, default_engine_name, engine_class
from shmbridge.engines.null import NullEngine
from shmbridge.engines.rapidocr import RapidOcrEngine
from shmbridge.engines.tesseract import TesseractEngine
from shmbridge.engines.vision import VisionEngine
from shmbridge.errors import EngineUnavailable


def test_default_engine_follows_the_platform() -> None:
    assert default_engine_name() == ("vision" if sys.platform == "darwin" else "rapidocr")


@pytest.mark.parametrize(
    ("name", "cls"),
    [("rapidocr", RapidOcrEngine), ("tesseract", TesseractEngine), ("vision", VisionEngine), ("null", NullEngine)],
)
def test_every_engine_module_imports_on_any_platform(name: str, cls: type) -> None:
    assert engine_class(name) is cls
    assert cls.name == name


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(EngineUnavailable) as caught:
        create_engine("abbyy")
    assert "unknown engine 'abbyy'" in str(caught.value)
    assert all(name in str(caught.value) for name in ENGINES)


def test_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINES, "tesseract", "shmbridge.engines.not_installed_here:TesseractEngine")
    with pytest.raises(EngineUnavailable) as caught:
        engine_class("tesseract")
    assert "pip install 'shmbridge[tesseract]'" in str(caught.value)
    assert "tesseract-ocr-eng" in str(caught.value)


def test_engine_options_reach_the_constructor() -> None:
    with pytest.raises(ValueError, match="max_side"):
        create_engine("rapidocr", max_side=8)
