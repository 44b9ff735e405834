"""Every error status of the HTTP API, triggered for real, always in the one error shape.

400 bad input, 404/405 routing, 413 limits (checked before the body is read or the image decoded), 415
media type, 422 schema, 503 BUSY with Retry-After, 504 engine timeout. A client mistake is never a 500.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from .service_helpers import MAX_FRAME_BYTES, MAX_PIXELS, ServiceProcess, b64, encode, pattern, wait_until

RAW = {"content-type": "application/octet-stream"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert {"code", "code_num", "message"} <= error.keys()
    assert isinstance(error["code_num"], int) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


# -- 400 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "media"),
    [
        (b"this is not an image", "image/png"),
        (encode(pattern(20, 20), "PNG")[:60], "image/png"),  # truncated
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png"),  # a signature and nothing else
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png"),
    ],
    ids=["garbage", "truncated", "signature-only", "svg-as-png"],
)
def test_undecodable_image_is_400(client: httpx.Client, body: bytes, media: str) -> None:
    assert_error(client.post("/api/v1/ocr", content=body, headers={"content-type": media}), 400)


def test_empty_bodies_are_400(client: httpx.Client) -> None:
    assert_error(client.post("/api/v1/ocr", content=b"", headers={"content-type": "image/png"}), 400, "BAD_DIMENSIONS")
    assert_error(client.post("/api/v1/ocr?height=2&width=2", content=b"", headers=RAW), 400)
    assert_error(client.post("/api/v1/vision/ocr", json={"image_data": ""}), 400)


def test_shape_and_bytes_mismatch_is_400(client: httpx.Client) -> None:
    data = pattern(10, 10).tobytes()
    assert_error(client.post("/api/v1/ocr?height=10&width=11&channels=3", content=data, headers=RAW),
                 400, "SHAPE_MISMATCH")  # fmt: skip
    assert_error(client.post("/api/v1/ocr?height=10&width=10&channels=4", content=data, headers=RAW),
                 400, "SHAPE_MISMATCH")  # fmt: skip
    assert_error(client.post("/api/v1/ocr?height=10&width=10&pitch=20", content=data, headers=RAW), 400)
    assert_error(client.post("/api/v1/ocr", content=data, headers={**RAW, "X-Shmbridge-Shape": "10by10"}), 400)
    assert_error(client.post("/api/v1/ocr?height=10&width=10&channels=2", content=data[:200], headers=RAW), 400)
    assert_error(client.post("/api/v1/ocr?height=10&width=10&channels=3&pixel_format=rgba", content=data,
                             headers=RAW), 400, "SHAPE_MISMATCH")  # fmt: skip
    # Shape parameters with an encoded image's type: ambiguous, refused.
    assert_error(client.post("/api/v1/ocr?height=10&width=10", content=data, headers={"content-type": "image/png"}),
                 400)  # fmt: skip


def test_bad_options_are_400(client: httpx.Client) -> None:
    data = pattern(10, 10).tobytes()
    assert_error(client.post("/api/v1/ocr?height=10&width=10&colour=red", content=data, headers=RAW),
                 400, "UNKNOWN_OPTION")  # fmt: skip
    assert_error(client.post("/api/v1/ocr?height=10&width=10&roi=1,2,3", content=data, headers=RAW), 400)
    assert_error(client.post("/api/v1/ocr?height=10&width=10&roi=5,5,10,10", content=data, headers=RAW),
                 400, "OUT_OF_BOUNDS")  # fmt: skip


def test_bad_base64_is_400(client: httpx.Client) -> None:
    assert_error(client.post("/api/v1/vision/ocr", json={"image_data": "@@@ not base64 @@@"}), 400)
    assert_error(client.post("/api/v1/vision/ocr", json={"image_data": "data:image/png,rawtext"}), 400)
    assert_error(client.post("/api/v1/vision/text", json={"image_data": b64(b"not an image")}), 400)


# -- 404 / 405 ---------------------------------------------------------------------------------------


def test_routing_errors_use_the_error_shape(client: httpx.Client) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404)
    error = assert_error(client.get("/api/v1/ocr"), 405)
    assert error["code"] == "INVALID_REQUEST"


# -- 413 ---------------------------------------------------------------------------------------------


def test_body_over_limit_is_413_before_reading(client: httpx.Client) -> None:
    body = b"\0" * (MAX_FRAME_BYTES + 1)
    assert_error(client.post("/api/v1/ocr", content=body, headers={"content-type": "image/png"}),
                 413, "IMAGE_TOO_LARGE")  # fmt: skip
    # Small routes have small limits.
    assert_error(client.post("/api/v1/shmem/regions", content=b"{" + b" " * (2 << 20) + b"}",
                             headers={"content-type": "application/json"}), 413)  # fmt: skip


def test_chunked_body_over_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_FRAME_BYTES // 65536 + 2):
            yield b"\0" * 65536

    response = client.post("/api/v1/ocr", content=chunks(), headers={"content-type": "image/png"})
    assert_error(response, 413)


def test_pixels_over_limit_are_413(client: httpx.Client) -> None:
    side = int(MAX_PIXELS**0.5) + 10
    big = np.zeros((side, side), dtype=np.uint8)  # compresses to almost nothing: a tiny decompression bomb
    png = encode(big, "PNG")
    assert len(png) < 10_000
    assert_error(client.post("/api/v1/ocr", content=png, headers={"content-type": "image/png"}), 413, "IMAGE_TOO_LARGE")
    assert_error(client.post("/api/v1/vision/ocr", json={"image_data": b64(png)}), 413, "IMAGE_TOO_LARGE")
    # Raw pixels: the shape alone is refused, before the body is read.
    assert_error(client.post(f"/api/v1/ocr?height={side}&width={side}&channels=1", content=b"\0" * 16, headers=RAW),
                 413)  # fmt: skip


def test_batch_item_over_limit_fails_alone(client: httpx.Client) -> None:
    side = int(MAX_PIXELS**0.5) + 10
    payload = {"images": [b64(encode(np.zeros((side, side), np.uint8), "PNG")), b64(encode(pattern(4, 4), "PNG"))]}
    body = client.post("/api/v1/vision/ocr/batch", json=payload).json()
    assert body["results"][0]["error_detail"]["code"] == "IMAGE_TOO_LARGE"
    assert body["results"][1]["error"] is None


# -- 415 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("media", ["text/plain", "application/json", "image/svg+xml"])
def test_unsupported_media_type_is_415(client: httpx.Client, media: str) -> None:
    response = client.post("/api/v1/ocr", content=encode(pattern(4, 4), "PNG"), headers={"content-type": media})
    assert_error(response, 415, "UNSUPPORTED_MEDIA")


# -- 422 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/api/v1/vision/ocr", {}),
        ("/api/v1/vision/ocr", {"image_data": 12}),
        ("/api/v1/vision/ocr", {"image_data": "x", "recognition_level": "slow"}),
        ("/api/v1/vision/ocr", {"image_data": "x", "minimum_text_height": 2}),
        ("/api/v1/vision/ocr/batch", {"images": []}),
        ("/api/v1/vision/ocr/batch", {"images": ["x"], "max_concurrent": 0}),
        ("/api/v1/shmem/regions", {"offset": 0}),
        ("/api/v1/shmem/ocr", {"region": "a", "height": 1, "width": 1, "dtype": "float32"}),
    ],
)
def test_schema_errors_are_422(client: httpx.Client, path: str, payload: dict) -> None:
    error = assert_error(client.post(path, json=payload), 422, "INVALID_REQUEST")
    assert error["details"] and "input" not in error["details"][0]


def test_invalid_json_is_422(client: httpx.Client) -> None:
    response = client.post("/api/v1/vision/ocr", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 422)


def test_bad_query_types_are_422(client: httpx.Client) -> None:
    assert_error(client.post("/api/v1/ocr?height=abc&width=2", content=b"\0" * 12, headers=RAW), 422)
    assert_error(client.post("/api/v1/ocr?height=2&width=2&dtype=float32", content=b"\0" * 12, headers=RAW), 422)


# -- 503 and 504 -------------------------------------------------------------------------------------


def test_busy_is_503_with_retry_after(slow_service: ServiceProcess) -> None:
    image = pattern(8, 8)
    client = slow_service.client()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.post, "/api/v1/ocr?height=8&width=8", content=image.tobytes(), headers=RAW)
        assert wait_until(lambda: client.get("/health").json()["in_flight"] >= 1, timeout=10)
        response = client.post("/api/v1/ocr?height=8&width=8", content=image.tobytes(), headers=RAW)
        error = assert_error(response, 503, "BUSY")
        assert int(response.headers["retry-after"]) >= 1 and error["retry_after"] > 0
        legacy = client.post("/api/v1/vision/ocr", json={"image_data": b64(encode(image, "PNG"))})
        assert_error(legacy, 503, "BUSY")
        assert first.result(timeout=30).status_code == 200


def test_engine_timeout_is_504(service_factory: Callable[..., ServiceProcess]) -> None:
    service = service_factory(
        "--engine-option", "delay_ms=1000", "--engine-timeout", "0.2", "--workers", "1", "--no-warm-up", regions=False
    )  # fmt: skip
    client = service.client()
    response = client.post("/api/v1/ocr?height=4&width=4", content=pattern(4, 4).tobytes(), headers=RAW)
    assert_error(response, 504, "ENGINE_TIMEOUT")
    health = client.get("/health").json()
    assert "ENGINE_TIMEOUT" in (health["last_error"] or "")
    # Regions are off in this service: their routes say so.
    assert_error(client.get("/api/v1/shmem/regions"), 404)
    assert_error(client.post("/api/v1/shmem/regions", json={"name": "a", "byte_size": 4096}), 404)
    assert client.get("/api/v1/bridge/info").json()["modes"]["shm_region"] is False


def test_a_stalled_body_is_408_within_the_request_timeout(service_factory: Callable[..., ServiceProcess]) -> None:
    """A client that announces 1000 bytes and sends 10 does not hold the connection past the timeout
    (without the deadline this read would hit the socket's own 10 s timeout and fail)."""
    service = service_factory("--request-timeout", "1", regions=False)
    host, port = service.client().base_url.host, service.client().base_url.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/ocr?height=10&width=10&channels=3 HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"TIMEOUT"' in answer
    assert service.client().get("/health").status_code == 200
