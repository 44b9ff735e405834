"""RapidOCR, the default engine, read on real scans and on a synthetic desktop with known boxes.

One engine is built per module, offline: the network guard is up for the module's whole life, so any
download attempt by RapidOCR fails these tests. The 1080p desktop is read once (module fixture) and the
CER and box tests share that reading.
"""

from __future__ import annotations

import asyncio
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shmbridge.bench import synthetic
from shmbridge.config import ServiceConfig
from shmbridge.engines import create_engine
from shmbridge.engines.base import EngineOutput
from shmbridge.engines.rapidocr import (
    DET_MODEL,
    RapidOcrEngine,
    drop_short_lines,
    fit_to_ink,
    locate_models,
    option_warnings,
    rapidocr_language,
)
from shmbridge.engines.results import is_drawn_shape, make_line
from shmbridge.errors import EngineUnavailable, InvalidRequest
from shmbridge.models import OcrOptions, OcrResult, PixelFormat, Roi
from shmbridge.service.core import ServiceCore

from .cer import box_error, cer, match_lines, normalise
from .conftest import bgr, require_fonts, scan

BOX_TOLERANCE_PX = 3

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def engine(network_attempts: list[str]) -> Iterator[RapidOcrEngine]:
    built = create_engine("rapidocr")
    assert isinstance(built, RapidOcrEngine)
    built.warm_up()
    yield built
    built.close()


def read(engine: RapidOcrEngine, rgb: np.ndarray, options: OcrOptions | None = None) -> EngineOutput:
    return engine.recognize(bgr(rgb), PixelFormat.BGR, options or OcrOptions())


def scan_rgb(name: str) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Image.open(scan(name)).convert("RGB")))


def gold(name: str) -> str:
    return scan(name).read_text(encoding="utf-8")


# -- real scans ---------------------------------------------------------------------------------------


def test_phototest_cer_at_most_1_percent(engine: RapidOcrEngine) -> None:
    output = read(engine, scan_rgb("phototest.tif"))
    text = "\n".join(line.text for line in output.lines)
    assert cer(gold("phototest.gold.txt"), text) <= 0.01, text
    assert output.warnings == []


def test_eurotext_cer_at_most_2_percent(engine: RapidOcrEngine) -> None:
    """Six languages with accents and guillemets; measured 0.5% (it reads „…” as …")."""
    output = read(engine, scan_rgb("eurotext.tif"), OcrOptions(languages=("en", "de", "fr", "it", "es", "pt")))
    text = "\n".join(line.text for line in output.lines)
    assert cer(gold("eurotext.txt"), text) <= 0.02, text
    assert output.warnings == []


# -- the synthetic desktop -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def desktop_output(engine: RapidOcrEngine, desktop: synthetic.Labelled) -> EngineOutput:
    image, _ = desktop
    return read(engine, image)


def test_desktop_cer_at_most_1_percent(desktop: synthetic.Labelled, desktop_output: EngineOutput) -> None:
    _, truth = desktop
    score = match_lines(truth, desktop_output.lines)
    assert score.cer <= 0.01, f"CER {score.cer:.4f}\n{score.report()}"
    assert len(score.extra) <= 2, score.report()  # a window-control disc may read as "●"


def test_desktop_boxes_fit_the_ink(desktop: synthetic.Labelled, desktop_output: EngineOutput) -> None:
    """Every recognised line whose text is a true line's has that line's box, within a few pixels."""
    _, truth = desktop
    score = match_lines(truth, desktop_output.lines)
    checked = 0
    for match in score.matches:
        if match.line is None or normalise(match.line.text) != normalise(match.truth_text):
            continue
        error = box_error(match.line.box, match.truth_box)
        assert error <= BOX_TOLERANCE_PX, f"{match.truth_text!r}: {match.line.box} vs {match.truth_box}"
        checked += 1
    assert checked >= 0.95 * len(truth)


def test_read_only_input_is_read_and_left_untouched(engine: RapidOcrEngine) -> None:
    require_fonts()
    image, truth = synthetic.button_300x60()
    native = bgr(image)
    native.flags.writeable = False  # as a client's shared memory is mapped
    before = zlib.crc32(native)
    output = engine.recognize(native, PixelFormat.BGR, OcrOptions())
    assert [line.text for line in output.lines] == [truth[0].text]
    assert zlib.crc32(native) == before


def test_button_300x60_read_exactly(engine: RapidOcrEngine) -> None:
    require_fonts()
    image, truth = synthetic.button_300x60()
    output = read(engine, image)
    assert [line.text for line in output.lines] == [truth[0].text]
    assert box_error(output.lines[0].box, truth[0].box) <= BOX_TOLERANCE_PX
    assert 0.5 < output.lines[0].confidence <= 1.0


def test_panel_800x200_read_exactly(engine: RapidOcrEngine) -> None:
    require_fonts()
    image, truth = synthetic.panel_800x200()
    output = read(engine, image)
    assert [line.text for line in output.lines] == [line.text for line in truth]


# -- options ---------------------------------------------------------------------------------------------


def test_defaults_and_covered_languages_give_no_warnings() -> None:
    covered = frozenset({"en", "de", "fr", "ch", "chinese_cht", "japan"})
    assert option_warnings(OcrOptions(), covered) == []
    assert option_warnings(OcrOptions(languages=("de-DE", "fr", "zh-Hant", "ja-JP")), covered) == []
    assert option_warnings(OcrOptions(languages=("eng", "deu", "chi_sim", "chi_tra", "jpn")), covered) == []


def test_unhonoured_options_are_warned_about(engine: RapidOcrEngine) -> None:
    require_fonts()
    image, truth = synthetic.button_300x60()
    options = OcrOptions(languages=("en-US", "ko-KR"), custom_words=("shmbridge",))
    output = read(engine, image, options)
    assert output.warnings == [
        "rapidocr's PP-OCRv6 model does not cover ko-KR; text in those languages may be misread",
        "custom_words are not supported by rapidocr",
    ]
    assert [line.text for line in output.lines] == [truth[0].text]
    # Nothing sticks: the next default call is warning-free and reads the same.
    again = read(engine, image)
    assert again.warnings == [] and [line.text for line in again.lines] == [truth[0].text]


@pytest.mark.parametrize(
    ("tag", "code"),
    [("en-US", "en"), ("de", "de"), ("zh-Hans", "ch"), ("zh-TW", "chinese_cht"), ("ja-JP", "japan")],
)
def test_language_tags(tag: str, code: str) -> None:
    assert rapidocr_language(tag) == code


def test_minimum_text_height_filters_only_above_the_default(engine: RapidOcrEngine) -> None:
    """The panel's bold 20 px title is about 19 px of ink, the 16 px body lines at most 16: a minimum of
    17.5 px (0.0875 of 200) keeps the title alone; the default and smaller values keep everything."""
    require_fonts()
    image, truth = synthetic.panel_800x200()
    assert truth[0].box.height >= 18 and all(line.box.height <= 16 for line in truth[1:])
    everything = [line.text for line in truth]
    for fraction in (0.0, 0.01, OcrOptions().minimum_text_height):
        assert [line.text for line in read(engine, image, OcrOptions(minimum_text_height=fraction)).lines] == (
            everything
        )
    tall = read(engine, image, OcrOptions(minimum_text_height=17.5 / 200))
    assert [line.text for line in tall.lines] == ["Backup completed"] and tall.warnings == []


def test_a_drawn_shape_alone_is_not_a_line_of_text() -> None:
    assert is_drawn_shape("■") and is_drawn_shape(" ▌ █ ") and is_drawn_shape("●")
    assert not is_drawn_shape("■ Done") and not is_drawn_shape("—") and not is_drawn_shape("|")
    assert not is_drawn_shape("") and not is_drawn_shape("   ")


def test_drop_short_lines_measures_the_quad() -> None:
    lines = [make_line("tall", 1.0, ((0, 0), (50, 0), (50, 20), (0, 20)))]
    lines.append(make_line("short", 1.0, ((0, 30), (50, 30), (50, 40), (0, 40))))
    assert [line.text for line in drop_short_lines(lines, 0.15, 100)] == ["tall"]
    assert drop_short_lines(lines, 0.03125, 1000) == lines


def test_wrong_pixel_format_is_refused(engine: RapidOcrEngine) -> None:
    with pytest.raises(InvalidRequest):
        engine.recognize(np.zeros((10, 10, 3), np.uint8), PixelFormat.RGB, OcrOptions())
    with pytest.raises(InvalidRequest):
        engine.recognize(np.zeros((10, 20, 3), np.uint8)[:, ::2], PixelFormat.BGR, OcrOptions())


def test_capabilities_say_what_is_honoured(engine: RapidOcrEngine) -> None:
    caps = engine.capabilities()
    assert caps["name"] == "rapidocr" and caps["native_formats"] == ["bgr"] and caps["accepts_strides"] is False
    assert caps["recognition_levels"] == ["accurate", "fast"] and caps["custom_words"] is False
    assert {"en", "de", "fr"} <= set(caps["languages"]) and caps["use_cls"] is False


# -- models and the network ------------------------------------------------------------------------------


def test_missing_models_are_reported_without_any_download(tmp_path: Path, network_attempts: list[str]) -> None:
    with pytest.raises(EngineUnavailable, match=DET_MODEL) as caught:
        RapidOcrEngine(model_dir=tmp_path)
    assert "never downloads" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    assert network_attempts == []


def test_wheel_models_are_found() -> None:
    models = locate_models(use_cls=True)
    assert {"det", "rec", "cls"} == set(models) and all(path.is_file() for path in models.values())


def test_network_guard_is_up(network_attempts: list[str]) -> None:
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)
    assert network_attempts and "192.0.2.1" in network_attempts[-1]
    network_attempts.clear()


# -- fitting boxes to ink (pure) ------------------------------------------------------------------------


def _page(height: int = 40, width: int = 120) -> np.ndarray:
    return np.full((height, width, 3), 255, np.uint8)


def test_fit_to_ink_shrinks_a_padded_box() -> None:
    page = _page()
    page[15:25, 30:80] = 0
    padded = ((22.0, 8.0), (90.0, 8.0), (90.0, 32.0), (22.0, 32.0))
    assert fit_to_ink(page, padded) == ((30, 15), (80, 15), (80, 25), (30, 25))


def test_fit_to_ink_ignores_rules_and_neighbours() -> None:
    page = _page()
    page[15:25, 30:80] = 0  # the line
    page[9, :] = 120  # a table rule across the whole box
    page[30:32, 40:60] = 0  # the descenders of the next line, cut off from the middle
    fitted = fit_to_ink(page, ((22.0, 8.0), (90.0, 8.0), (90.0, 33.0), (22.0, 33.0)))
    assert fitted == ((30, 15), (80, 15), (80, 25), (30, 25))


def test_fit_to_ink_keeps_tilted_or_empty_boxes() -> None:
    page = _page()
    tilted = ((10.0, 10.0), (60.0, 20.0), (58.0, 30.0), (8.0, 20.0))
    assert fit_to_ink(page, tilted) == tilted
    blank = ((10.0, 10.0), (60.0, 10.0), (60.0, 30.0), (10.0, 30.0))
    assert fit_to_ink(page, blank) == blank


# -- regions of interest through the service core --------------------------------------------------------

REGIONS = {
    "dialog": Roi(x=1320, y=650, width=540, height=250),
    "terminal": Roi(x=1290, y=56, width=591, height=545),
    "save button": Roi(x=1700, y=800, width=150, height=70),
}


def test_regions_of_interest_read_like_crops(desktop: synthetic.Labelled, network_attempts: list[str]) -> None:
    """A region of interest on the full frame gives the crop's text, with boxes in frame coordinates."""
    image, truth = desktop

    async def run() -> list[tuple[str, OcrResult, OcrResult]]:
        config = ServiceConfig(engine="rapidocr", engine_workers=1, http_enabled=False, warm_up=False)
        core = ServiceCore(config)
        try:
            results = []
            for name, roi in REGIONS.items():
                framed = await core.process(image, PixelFormat.RGB, OcrOptions(roi=roi), mode="http_raw")
                crop = np.ascontiguousarray(image[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width])
                cropped = await core.process(crop, PixelFormat.RGB, OcrOptions(), mode="http_raw")
                results.append((name, framed, cropped))
            return results
        finally:
            core.close()

    for name, framed, cropped in asyncio.run(run()):
        roi = REGIONS[name]
        assert framed.text == cropped.text, name
        for a, b in zip(framed.lines, cropped.lines, strict=True):
            assert abs(a.box.x - (b.box.x + roi.x)) < 0.5 and abs(a.box.y - (b.box.y + roi.y)) < 0.5
        expected = synthetic.truth_inside(truth, roi.x, roi.y, roi.width, roi.height)
        score = match_lines(expected, framed.lines)
        assert score.cer == 0.0, f"{name}\n{score.report()}"
        assert all(box_error(m.line.box, m.truth_box) <= BOX_TOLERANCE_PX for m in score.matches if m.line)
        assert framed.engine == "rapidocr" and (framed.width, framed.height) == (1920, 1080)
