"""Every HTTP endpoint of a real ``shmbridge serve`` (null engine): shapes, pixels read, metrics moving.

The null engine answers with a CRC-32 of the pixels it read (``checksum_mode=full`` here), so equality with
the checksum of the array the test sent proves the service read exactly those pixels.
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from shmbridge import protocol
from shmbridge.engines.null import checksum

from .service_helpers import MAX_FRAME_BYTES, ServiceProcess, b64, encode, pattern

LEGACY_FIELDS = {
    "request_id",
    "text",
    "confidence",
    "processing_time_ms",
    "ane_used",
    "bounding_boxes",
    "language",
    "error",
    "cache_hit",
}


def crc(array: np.ndarray) -> str:
    return checksum(array, "full")


def prometheus(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def ok_count(values: dict, mode: str) -> float:
    return values.get(("shmbridge_requests_total", (("mode", mode), ("outcome", "ok"))), 0.0)


# -- service routes ----------------------------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["ready"] is True
    assert body["engine"] == "null"
    assert {"uptime_s", "in_flight", "queued", "last_error"} <= body.keys()


def test_bridge_info(client: httpx.Client, null_service: ServiceProcess) -> None:
    info = client.get("/api/v1/bridge/info").json()
    assert info["protocol_version"] == protocol.VERSION
    assert info["modes"] == {"http": True, "legacy": True, "shm_session": True, "shm_region": True}
    assert info["socket_path"] == str(null_service.socket_path)
    assert info["limits"]["max_frame_bytes"] == MAX_FRAME_BYTES
    assert info["engine"]["name"] == "null" and info["engine"]["workers"] >= 1
    assert "pixels" in info["coordinates"]


def test_openapi_and_docs(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/v1/vision/ocr",
        "/api/v1/vision/ocr/batch",
        "/api/v1/vision/text",
        "/api/v1/ocr",
        "/api/v1/shmem/regions",
        "/api/v1/shmem/regions/{name}",
        "/api/v1/shmem/ocr",
        "/api/v1/shmem/status",
        "/api/v1/bridge/info",
        "/health",
        "/metrics",
        "/metrics/enhanced",
    ):
        assert path in spec["paths"], path
    assert "image/png" in spec["paths"]["/api/v1/ocr"]["post"]["requestBody"]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # Served from the installed files, so it works on a host with no internet access.
    assert "cdn" not in docs.text.lower() and "http://" not in docs.text and "https://" not in docs.text
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000


def test_shmem_status(client: httpx.Client, null_service: ServiceProcess) -> None:
    status = client.get("/api/v1/shmem/status").json()
    assert status["session_mode"] is True
    assert status["socket_path"] == str(null_service.socket_path)
    assert {"sessions", "slots_in_use", "bytes_mapped"} <= status.keys()
    assert status["regions"]["enabled"] is True and isinstance(status["regions"]["items"], list)


def test_prometheus_counters_move(client: httpx.Client) -> None:
    before = prometheus(client)
    image = pattern(20, 30)
    response = client.post(
        "/api/v1/ocr",
        params={"height": 20, "width": 30, "channels": 3},
        content=image.tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200
    after = prometheus(client)
    assert ok_count(after, "http_raw") == ok_count(before, "http_raw") + 1
    received = ("shmbridge_bytes_received_total", (("mode", "http_raw"),))
    assert after[received] == before.get(received, 0.0) + image.nbytes
    count = ("shmbridge_request_seconds_count", (("mode", "http_raw"), ("outcome", "ok")))
    assert after[count] == before.get(count, 0.0) + 1


def test_metrics_enhanced(client: httpx.Client) -> None:
    image = pattern(8, 8)
    for _ in range(3):
        client.post("/api/v1/ocr?height=8&width=8", content=image.tobytes(),
                    headers={"content-type": "application/octet-stream"})  # fmt: skip
    body = client.get("/metrics/enhanced").json()
    latency = body["latency_seconds"]["http_raw"]
    assert latency["count"] >= 3 and latency["p50"] <= latency["p95"] <= latency["p99"]
    assert 0.0 <= body["zero_copy_ratio"] <= 1.0
    assert body["bytes_copied"].get("http_raw", 0.0) == 0.0  # raw pixels are never copied
    assert body["requests"]["http_raw"]["ok"] >= 3
    assert {"fallbacks", "fallback_ratio", "in_flight", "sessions", "regions"} <= body.keys()


def test_fallback_header_is_counted(client: httpx.Client) -> None:
    before = client.get("/metrics/enhanced").json()["fallbacks"]
    image = pattern(4, 4)
    response = client.post(
        "/api/v1/ocr?height=4&width=4",
        content=image.tobytes(),
        headers={"content-type": "application/octet-stream", "X-Shmbridge-Fallback": "1"},
    )
    assert response.status_code == 200
    assert client.get("/metrics/enhanced").json()["fallbacks"] == before + 1
    values = prometheus(client)
    assert values[("shmbridge_fallbacks_total", ())] >= before + 1


# -- fast path: raw pixels ---------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "pixel_format"), [(3, "rgb"), (3, "bgr"), (4, "rgba"), (4, "bgra"), (1, "gray")])
def test_raw_pixels_query(client: httpx.Client, channels: int, pixel_format: str) -> None:
    image = pattern(37, 53, channels, seed=channels)
    response = client.post(
        "/api/v1/ocr",
        params={"height": 37, "width": 53, "channels": channels, "pixel_format": pixel_format, "dtype": "uint8"},
        content=image.tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checksum"] == crc(image)
    assert (body["width"], body["height"], body["engine"]) == (53, 37, "null")
    assert response.headers["x-request-id"] == body["request_id"]


def test_raw_pixels_headers(client: httpx.Client) -> None:
    image = pattern(16, 24, 4, seed=7)
    response = client.post(
        "/api/v1/ocr",
        content=image.tobytes(),
        headers={
            "content-type": "application/octet-stream",
            "X-Shmbridge-Shape": "16x24x4",
            "X-Shmbridge-Pixel-Format": "bgra",
            "X-Request-Id": "from-header",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["checksum"] == crc(image)
    assert response.json()["request_id"] == "from-header"


@pytest.mark.parametrize("tight", [False, True])
def test_raw_pixels_with_pitch(client: httpx.Client, tight: bool) -> None:
    padded = pattern(10, 40, 1, seed=3)  # rows of 40 bytes holding 12 RGB pixels (36 bytes) each
    data = padded.tobytes()[: 9 * 40 + 36] if tight else padded.tobytes()
    response = client.post(
        "/api/v1/ocr",
        params={"height": 10, "width": 12, "channels": 3, "pitch": 40},
        content=data,
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    expected = padded[:, :36].reshape(10, 12, 3)
    assert response.json()["checksum"] == crc(expected)


def test_raw_pixels_roi_and_options(client: httpx.Client) -> None:
    image = pattern(30, 40, 3, seed=11)
    response = client.post(
        "/api/v1/ocr",
        params={
            "height": 30,
            "width": 40,
            "roi": "5,6,20,10",
            "recognition_level": "fast",
            "languages": "en-US,de-DE",
            "custom_words": "shmbridge,OCR",
            "minimum_text_height": 0.1,
            "request_id": "roi-1",
        },
        content=image.tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checksum"] == crc(image[6:16, 5:25])
    assert body["request_id"] == "roi-1"
    assert (body["width"], body["height"]) == (40, 30)  # results are in full-frame coordinates


# -- fast path: encoded images -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media", "save", "exact"),
    [
        ("PNG", "image/png", {}, True),
        ("JPEG", "image/jpeg", {"quality": 90}, False),
        ("WEBP", "image/webp", {"lossless": True}, True),
        ("BMP", "image/bmp", {}, True),
        ("TIFF", "image/tiff", {}, True),
        ("GIF", "image/gif", {}, False),
    ],
)
def test_encoded_formats(client: httpx.Client, fmt: str, media: str, save: dict, exact: bool) -> None:
    image = pattern(24, 32, 3, seed=5)
    response = client.post("/api/v1/ocr", content=encode(image, fmt, **save), headers={"content-type": media})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (32, 24)
    if exact:
        assert body["checksum"] == crc(image)


@pytest.mark.parametrize(
    ("array", "mode", "expected_channels"),
    [
        (pattern(12, 14, 1), "L", 1),
        (pattern(12, 14, 4), "RGBA", 4),
        ((pattern(12, 14, 1).astype(np.uint16) * 257), "I;16", 1),
    ],
    ids=["gray", "rgba", "gray16"],
)
def test_encoded_pixel_modes(client: httpx.Client, array: np.ndarray, mode: str, expected_channels: int) -> None:
    image = Image.fromarray(array)
    assert image.mode == mode
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    response = client.post("/api/v1/ocr", content=buffer.getvalue(), headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (14, 12)
    if mode == "I;16":
        assert body["checksum"] == crc((array >> 8).astype(np.uint8))
        assert any("16-bit" in warning for warning in body["warnings"])
    else:
        assert body["checksum"] == crc(array)


def test_octet_stream_without_shape_is_sniffed(client: httpx.Client) -> None:
    image = pattern(9, 9)
    response = client.post(
        "/api/v1/ocr", content=encode(image, "PNG"), headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 200 and response.json()["checksum"] == crc(image)


# -- legacy ------------------------------------------------------------------------------------------


def test_legacy_ocr_like_old_clients(client: httpx.Client) -> None:
    image = pattern(20, 30, seed=2)
    payload = {
        "image_data": b64(encode(image, "PNG")),
        "recognition_level": "accurate",
        "languages": ["en-US"],
        "custom_words": [],
        "minimum_text_height": 0.03125,
        "priority": 5,
        "request_id": "old-1",
    }
    response = client.post("/api/v1/vision/ocr", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() >= LEGACY_FIELDS
    assert body["request_id"] == "old-1"
    assert body["ane_used"] is False and body["cache_hit"] is False and body["error"] is None
    assert body["language"] == "en-US"
    assert body["checksum"] == crc(image)
    assert (body["width"], body["height"], body["engine"]) == (30, 20, "null")
    assert {"lines", "timings", "warnings"} <= body.keys()


def test_legacy_accepts_data_url_newlines_and_no_content_type(client: httpx.Client) -> None:
    image = pattern(10, 10, seed=4)
    png = encode(image, "PNG")
    for image_data in (f"data:image/png;base64,{b64(png)}", base64.encodebytes(png).decode()):
        response = client.post("/api/v1/vision/ocr", json={"image_data": image_data, "unknown_flag": True})
        assert response.status_code == 200, response.text
        assert response.json()["checksum"] == crc(image)
        assert any("unknown_flag" in warning for warning in response.json()["warnings"])
    response = client.post("/api/v1/vision/ocr", content=json.dumps({"image_data": b64(png)}).encode())
    assert response.status_code == 200, response.text  # old clients that never set a Content-Type


def test_legacy_text_regions(client: httpx.Client) -> None:
    response = client.post("/api/v1/vision/text", json={"image_data": b64(encode(pattern(8, 8), "PNG"))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text_regions"] == [] and "text" not in body and body["width"] == 8


def test_legacy_batch_mixed_items(client: httpx.Client) -> None:
    first, second = pattern(6, 7, seed=1), pattern(8, 9, seed=2)
    payload = {
        "images": [
            b64(encode(first, "PNG")),
            {"image_data": b64(encode(second, "PNG")), "request_id": "item-b", "recognition_level": "fast"},
            {"image_data": "not base64 !!!"},
            b64(b"certainly not an image"),
        ],
        "max_concurrent": 2,
        "timeout_seconds": 20,
    }
    response = client.post("/api/v1/vision/ocr/batch", json=payload, headers={"X-Shmbridge-Fallback": "1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["succeeded"], body["failed"]) == (4, 2, 2)
    results = body["results"]
    assert results[0]["checksum"] == crc(first) and results[0]["error"] is None
    assert results[1]["checksum"] == crc(second) and results[1]["request_id"] == "item-b"
    for failed in results[2:]:
        assert failed["error"] and failed["error_detail"]["code"] == "INVALID_REQUEST"
        assert failed.keys() >= LEGACY_FIELDS
