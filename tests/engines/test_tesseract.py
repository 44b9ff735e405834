"""Tesseract, the optional engine: raw pixels in, lines with boxes out, and clear messages when its
language data is missing. Engine tests skip, with the reason, only when tesserocr or the English data
are not installed; the pure mapping tests always run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shmbridge.bench import synthetic
from shmbridge.errors import EngineUnavailable
from shmbridge.models import OcrOptions, PixelFormat

from .cer import box_error, cer, match_lines
from .conftest import require_fonts, scan

tesseract = pytest.importorskip("shmbridge.engines.tesseract")


def _skip_reason() -> str | None:
    try:
        import tesserocr  # noqa: F401
    except ImportError:
        return "tesserocr is not installed: pip install 'shmbridge[tesseract]'"
    folder = tesseract.find_tessdata()
    if folder is None or not (folder / "eng.traineddata").is_file():
        return f"no eng.traineddata in {folder or tesseract.TESSDATA_DIRS}: apt-get install tesseract-ocr-eng"
    return None


@pytest.fixture(scope="module")
def engine() -> Iterator[tesseract.TesseractEngine]:
    reason = _skip_reason()
    if reason:
        print(f"skipping tesseract engine tests: {reason}")
        pytest.skip(reason)
    built = tesseract.TesseractEngine()
    built.warm_up()
    yield built
    built.close()


def gray_scan(name: str) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Image.open(scan(name)).convert("L")))


def test_phototest_cer_at_most_1_percent(engine: tesseract.TesseractEngine) -> None:
    output = engine.recognize(gray_scan("phototest.tif"), PixelFormat.GRAY, OcrOptions())
    text = "\n".join(line.text for line in output.lines)
    assert cer(scan("phototest.gold.txt").read_text(encoding="utf-8"), text) <= 0.01, text
    assert output.warnings == []
    first = output.lines[0]
    assert first.text.startswith("This is a lot of 12 point text")
    assert 0.5 < first.confidence <= 1.0 and 30 < first.box.x < 45 and 80 < first.box.y < 100


def test_rgb_rgba_and_strided_views_read_alike(engine: tesseract.TesseractEngine) -> None:
    rgb = np.ascontiguousarray(np.asarray(Image.open(scan("phototest.tif")).convert("RGB")))
    band = rgb[80:170]  # three lines
    rgba = np.concatenate([band, np.full((*band.shape[:2], 1), 255, np.uint8)], axis=2)
    texts = [
        [line.text for line in engine.recognize(image, fmt, OcrOptions()).lines]
        for image, fmt in [(band, PixelFormat.RGB), (rgba, PixelFormat.RGBA)]
    ]
    strided = rgb[80:170, 20:630]  # a cropped view: tesseract accepts strides
    assert not strided.flags.c_contiguous
    texts.append([line.text for line in engine.recognize(strided, PixelFormat.RGB, OcrOptions()).lines])
    assert texts[0] == texts[1] == texts[2]
    assert texts[0][0] == "This is a lot of 12 point text to test the"


def test_panel_lines_and_boxes(engine: tesseract.TesseractEngine) -> None:
    """Dark text on a light panel is tesseract's home ground: exact text and ink boxes, though its
    binarisation can leave a final full stop out of the box (measured: 6 px short on the right)."""
    require_fonts()
    image, truth = synthetic.panel_800x200()
    output = engine.recognize(image, PixelFormat.RGB, OcrOptions())
    score = match_lines(truth, output.lines)
    assert score.cer <= 0.01, score.report()
    assert all(box_error(m.line.box, m.truth_box) <= 7 for m in score.matches if m.line)


def test_unhonoured_options_are_warned_about(engine: tesseract.TesseractEngine) -> None:
    require_fonts()
    image, _ = synthetic.button_300x60()
    output = engine.recognize(image, PixelFormat.RGB, OcrOptions(recognition_level="fast", custom_words=("x",)))
    assert output.warnings == [
        "recognition_level 'fast' is not supported by tesseract; it ran at its only level",
        "custom_words are not supported by tesseract",
    ]
    assert engine.recognize(image, PixelFormat.RGB, OcrOptions()).warnings == []
    assert engine.recognize(image, PixelFormat.RGB, OcrOptions(languages=("eng",))).warnings == []


def test_info_lists_bcp47_tags(engine: tesseract.TesseractEngine) -> None:
    caps = engine.capabilities()
    assert "en" in caps["languages"] and caps["default_languages"] == ["en"]
    assert "eng" in caps["installed_languages"] and "osd" not in caps["languages"]


def test_missing_language_data_is_a_warning_naming_the_package(engine: tesseract.TesseractEngine) -> None:
    folder = tesseract.find_tessdata()
    assert folder is not None
    if (folder / "tlh.traineddata").is_file():  # pragma: no cover - nobody ships Klingon
        pytest.skip("tlh.traineddata is installed")
    options = OcrOptions(languages=("en-US", "tlh"))
    rgb = np.ascontiguousarray(np.asarray(Image.open(scan("phototest.tif")).convert("RGB"))[80:130])
    output = engine.recognize(rgb, PixelFormat.RGB, options)
    assert output.warnings == [
        "tesseract has no language code for 'tlh'; it was ignored",
    ]
    german = engine.recognize(rgb, PixelFormat.RGB, OcrOptions(languages=("de-DE",)))
    if not (folder / "deu.traineddata").is_file():
        assert "apt-get install tesseract-ocr-deu" in german.warnings[0]
        assert german.lines[0].text.startswith("This is a lot")


def test_missing_english_data_names_the_debian_package(tmp_path: Path) -> None:
    pytest.importorskip("tesserocr", reason="tesserocr is not installed: pip install 'shmbridge[tesseract]'")
    with pytest.raises(EngineUnavailable) as caught:
        tesseract.TesseractEngine(tessdata=tmp_path)
    assert "apt-get install tesseract-ocr-eng" in str(caught.value)
    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("en-US", "eng"),
        ("en", "eng"),
        ("de-DE", "deu"),
        ("fr_FR", "fra"),
        ("zh-Hans", "chi_sim"),
        ("zh-TW", "chi_tra"),
        ("ja", "jpn"),
        ("deu", "deu"),
        ("tlh", None),
    ],
)
def test_language_tags(tag: str, code: str | None) -> None:
    assert tesseract.tesseract_language(tag) == code


def test_debian_package_names() -> None:
    assert tesseract.debian_package("eng") == "tesseract-ocr-eng"
    assert tesseract.debian_package("chi_sim") == "tesseract-ocr-chi-sim"


def test_missing_tesserocr_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tesserocr", None)  # as if the extra were absent
    with pytest.raises(EngineUnavailable, match=r"pip install 'shmbridge\[tesseract\]'"):
        tesseract.TesseractEngine()
