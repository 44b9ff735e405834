"""Real text through every HTTP transport with the rapidocr engine.

The legacy request is built exactly as the old clients built it (a PNG, base64, in JSON with every old
field); the fast endpoint gets the PNG and the raw pixels. All must read the same words, with pixel boxes
(top-left origin) that lie on the rendered lines.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from .service_helpers import ServiceProcess, render_text, start_service

pytest.importorskip("rapidocr")
pytest.importorskip("shmbridge.engines.rapidocr")

LINES = ["Invoice 4721 paid", "Shared memory bridge"]


def normalise(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


@pytest.fixture(scope="module")
def rapidocr_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("rapid")
    service = start_service(workdir, "--workers", "1", engine="rapidocr", regions=False)
    yield service
    service.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def rendered() -> tuple[bytes, np.ndarray]:
    image = render_text(LINES)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue(), np.asarray(image)


def check_text(text: str) -> None:
    for line in LINES:
        assert normalise(line) in normalise(text), f"{line!r} not in {text!r}"


def test_legacy_request_as_old_clients_built_it(rapidocr_service: ServiceProcess, rendered) -> None:  # type: ignore[no-untyped-def]
    png, pixels = rendered
    payload = {
        "image_data": base64.b64encode(png).decode("utf-8"),
        "recognition_level": "accurate",
        "languages": ["en-US"],
        "custom_words": [],
        "minimum_text_height": 0.03125,
        "priority": "normal",
        "request_id": "legacy-text-1",
    }
    with httpx.Client(base_url=rapidocr_service.base_url, timeout=120) as client:
        response = client.post("/api/v1/vision/ocr", json=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    body = response.json()
    check_text(body["text"])
    assert body["request_id"] == "legacy-text-1" and body["error"] is None and body["ane_used"] is False
    assert body["engine"] == "rapidocr" and 0.5 < body["confidence"] <= 1.0
    height, width = pixels.shape[:2]
    boxes = body["bounding_boxes"]
    assert len(boxes) >= len(LINES)
    for box in boxes:
        assert {"text", "x", "y", "width", "height", "confidence"} <= box.keys()
        assert 0 <= box["x"] < width and 0 <= box["y"] < height
        assert box["x"] + box["width"] <= width + 2 and box["y"] + box["height"] <= height + 2
    # Pixels, top-left origin: the first line's box is in the upper half, and its ink is dark.
    first = min(boxes, key=lambda box: box["y"])
    assert normalise(LINES[0]) in normalise(first["text"]) and first["y"] < height / 2
    x, y, w, h = (int(first[key]) for key in ("x", "y", "width", "height"))
    assert pixels[y : y + h, x : x + w].min() < 100


def test_fast_png_and_raw_pixels_read_the_same_text(rapidocr_service: ServiceProcess, rendered) -> None:  # type: ignore[no-untyped-def]
    png, pixels = rendered
    height, width = pixels.shape[:2]
    with httpx.Client(base_url=rapidocr_service.base_url, timeout=120) as client:
        encoded = client.post("/api/v1/ocr", content=png, headers={"content-type": "image/png"})
        raw = client.post(
            "/api/v1/ocr",
            params={"height": height, "width": width, "channels": 3, "pixel_format": "rgb"},
            content=np.ascontiguousarray(pixels).tobytes(),
            headers={"content-type": "application/octet-stream"},
        )
        text_only = client.post("/api/v1/vision/text", json={"image_data": base64.b64encode(png).decode()})
    for response in (encoded, raw):
        assert response.status_code == 200, response.text
        check_text(response.json()["text"])
    assert encoded.json()["text"] == raw.json()["text"]
    # Per-stage times: the PNG was decoded, the raw pixels were not; the engine's stages fit in engine_ms.
    encoded_t, raw_t = encoded.json()["timings"], raw.json()["timings"]
    assert encoded_t["decode_ms"] > 0 and raw_t["decode_ms"] == 0
    for t in (encoded_t, raw_t):
        assert t["detect_ms"] > 0 and t["recognize_ms"] > 0
        assert t["detect_ms"] + t["recognize_ms"] + t["postprocess_ms"] <= t["engine_ms"]
    regions = text_only.json()["text_regions"]
    check_text(" ".join(region["text"] for region in regions))


# -- languages as users write them -----------------------------------------------------------------


@pytest.mark.parametrize("languages", ["eng", "deu,chi_sim", "de-DE,fr,jpn,zh-TW"])
def test_covered_languages_in_any_spelling_do_not_warn(
    rapidocr_service: ServiceProcess, rendered, languages: str
) -> None:  # type: ignore[no-untyped-def]
    png, _pixels = rendered
    with rapidocr_service.client(timeout=120) as http:
        response = http.post(f"/api/v1/ocr?languages={languages}", content=png, headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == []
    check_text(response.json()["text"])


def test_language_warnings_name_the_tag(rapidocr_service: ServiceProcess, rendered) -> None:  # type: ignore[no-untyped-def]
    png, _pixels = rendered
    with rapidocr_service.client(timeout=120) as http:
        response = http.post("/api/v1/ocr?languages=eng,en--US,ko", content=png, headers={"content-type": "image/png"})
    warnings = response.json()["warnings"]
    assert any("unknown language tag" in warning and "'en--US'" in warning for warning in warnings), warnings
    assert any("does not cover ko;" in warning for warning in warnings), warnings
    assert len(warnings) == 2 and not any("'eng'" in warning or "cover eng" in warning for warning in warnings)


def test_info_lists_bcp47_tags(rapidocr_service: ServiceProcess) -> None:
    with rapidocr_service.client() as http:
        listed = http.get("/api/v1/bridge/info").json()["engine"]["languages"]
    assert {"en", "de", "fr", "ja", "zh-Hans", "zh-Hant", "sr-Latn"} <= set(listed)
    assert not {"german", "french", "japan", "ch", "chinese_cht", "rs_latin"} & set(listed)


def test_cli_language_eng_does_not_warn(rapidocr_service: ServiceProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shot = tmp_path / "shot.png"
    render_text(LINES).save(shot)
    command = [sys.executable, "-m", "shmbridge.cli", "ocr", "--url", rapidocr_service.base_url, "--mode", "http",
               "--language", "eng", "--json", str(shot)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["warnings"] == [] and "not cover" not in out.stderr
    check_text(result["text"])


# -- a picture of what was read ------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["png", "raw bgr"])
def test_render_png_draws_the_boxes_where_the_lines_are(rapidocr_service: ServiceProcess, rendered, body) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    png, pixels = rendered
    height, width = pixels.shape[:2]
    with httpx.Client(base_url=rapidocr_service.base_url, timeout=120) as client:
        result = client.post("/api/v1/ocr", content=png, headers={"content-type": "image/png"}).json()
        if body == "png":
            drawn = client.post("/api/v1/ocr", params={"render": "png"}, content=png,
                                headers={"content-type": "image/png"})  # fmt: skip
        else:
            drawn = client.post(
                "/api/v1/ocr",
                params={"height": height, "width": width, "channels": 3, "pixel_format": "bgr", "render": "png"},
                content=np.ascontiguousarray(pixels[:, :, ::-1]).tobytes(),
                headers={"content-type": "application/octet-stream"},
            )
        bad = client.post("/api/v1/ocr", params={"render": "gif"}, content=png, headers={"content-type": "image/png"})
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png", drawn.text
    assert int(drawn.headers["x-shmbridge-lines"]) == len(result["lines"]) >= 2
    assert drawn.headers["x-request-id"]
    picture = np.asarray(Image.open(io.BytesIO(drawn.content)).convert("RGB"))
    assert picture.shape == pixels.shape
    # Inside each line's box the picture is tinted; far from every box it is the original, untouched.
    for line in result["lines"]:
        box = line["box"]
        y0, y1 = int(box["y"]), int(box["y"] + box["height"])
        x0, x1 = int(box["x"]), int(box["x"] + box["width"])
        changed = np.any(picture[y0:y1, x0:x1] != pixels[y0:y1, x0:x1], axis=2).mean()
        assert changed > 0.5, (line["text"], changed)
    assert np.array_equal(picture[-3:, -3:], pixels[-3:, -3:])
    assert bad.status_code == 422
