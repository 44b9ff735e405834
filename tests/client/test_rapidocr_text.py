"""One real read: a rendered word, through a rapidocr service, over shared memory and over HTTP."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from shmbridge import Client
from shmbridge.bench import synthetic
from tests.support.service import metric, running_service

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None, reason="rapidocr is not installed"),
]


def test_a_rendered_word_is_read_over_both_transports(tmp_path: Path) -> None:
    if not synthetic.fonts_available():
        pytest.skip(f"fonts missing in {synthetic.FONT_DIR}")
    picture = Image.new("RGB", (640, 160), "white")
    font = ImageFont.truetype(str(synthetic.FONT_DIR / "DejaVuSans.ttf"), 56)
    ImageDraw.Draw(picture).text((40, 45), "Invoice 2048", fill="black", font=font)
    with running_service(tmp_path, "--workers", "1", engine="rapidocr") as service, Client(service.url) as client:
        for mode, given in (("shared_memory", picture), ("shared_memory", Path(_save(picture, tmp_path)))):
            result = client.ocr(given)
            assert result.communication_mode == mode
            assert "invoice 2048" in result.text.lower(), result.text
            line = result.lines[0]
            assert 20 <= line.box.x <= 80 and 30 <= line.box.y <= 80  # pixels, top-left origin
        with Client(service.url, mode="http") as over_http:
            assert "invoice 2048" in over_http.ocr(picture).text.lower()
        assert [line.text for line in client.detect_text(picture)] == [result.lines[0].text]
        # RapidOCR takes BGR: the client wrote that order during its one copy, so the service copied nothing.
        assert metric(service.metrics_text(), "shmbridge_bytes_copied_total", mode="shm_session") == 0
        assert metric(service.metrics_text(), "shmbridge_zero_copy_requests_total", mode="shm_session") >= 3


def _save(picture: Image.Image, directory: Path) -> str:
    path = directory / "word.jpg"
    picture.save(path, quality=95)
    return str(path)
