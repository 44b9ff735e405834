"""How users send images over HTTP: multipart forms, bodies without a useful type, and bombs.

``curl -F file=@x.png`` (multipart, FastAPI's ``UploadFile`` convention) and ``curl --data-binary @x.png``
(which says ``application/x-www-form-urlencoded``) both work next to typed raw bodies; the magic number
decides what a generic body is. A 30000×30000 PNG is refused by the service's own ``--max-pixels`` with
the same 413 as raw pixels of that size, not by Pillow's decompression-bomb check.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest

from shmbridge.engines.null import checksum

from .service_helpers import MAX_PIXELS, ServiceProcess, b64, encode, pattern

RAW = {"content-type": "application/octet-stream"}
CURL_FORM = {"content-type": "application/x-www-form-urlencoded"}


def crc(array: np.ndarray) -> str:
    return checksum(array, "full")


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error["message"]


def bilevel_png(width: int, height: int) -> bytes:
    """A complete, valid 1-bit PNG of ``width``×``height`` white pixels: tiny on the wire, huge decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + b"\xff" * ((width + 7) // 8)  # filter byte "none", then the packed bits
    packer = zlib.compressobj(1)
    rows_per_block = max(1, (1 << 20) // len(row))
    parts = [packer.compress(row * min(rows_per_block, height - start)) for start in range(0, height, rows_per_block)]
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


# -- the bomb ----------------------------------------------------------------------------------------


def test_a_30000_square_png_gets_the_same_413_as_raw_pixels(client: httpx.Client) -> None:
    side = 30_000
    assert side * side > MAX_PIXELS
    png = bilevel_png(side, side)
    assert len(png) < 1 << 20  # well under the body limit: only the pixel count can refuse it
    raw = error_of(
        client.post(f"/api/v1/ocr?height={side}&width={side}&channels=1", content=b"\0" * 16, headers=RAW),
        413,
        "IMAGE_TOO_LARGE",
    )
    assert "--max-pixels" in raw
    assert error_of(client.post("/api/v1/ocr", content=png, headers={"content-type": "image/png"}),
                    413, "IMAGE_TOO_LARGE") == raw  # fmt: skip
    assert error_of(client.post("/api/v1/ocr", files={"file": ("bomb.png", png, "image/png")}),
                    413, "IMAGE_TOO_LARGE") == raw  # fmt: skip
    assert error_of(client.post("/api/v1/vision/ocr", json={"image_data": b64(png)}), 413, "IMAGE_TOO_LARGE") == raw
    assert "decompression bomb" not in raw.lower()


# -- multipart ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("part_type", ["image/png", "application/octet-stream", None])
def test_multipart_file_is_read(client: httpx.Client, part_type: str | None) -> None:
    image = pattern(11, 13)
    file = ("shot.png", encode(image, "PNG")) if part_type is None else ("shot.png", encode(image, "PNG"), part_type)
    response = client.post("/api/v1/ocr?languages=en-US", files={"file": file})
    assert response.status_code == 200, response.text
    assert response.json()["checksum"] == crc(image)


def test_multipart_raw_pixels_with_their_shape(client: httpx.Client) -> None:
    image = pattern(7, 9, channels=4)
    response = client.post(
        "/api/v1/ocr?height=7&width=9&channels=4",
        files={"file": ("frame.rgba", image.tobytes(), "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["checksum"] == crc(image)


def test_bad_multipart_forms_are_4xx(client: httpx.Client) -> None:
    png = encode(pattern(4, 4), "PNG")
    fields_only = b'--B\r\nContent-Disposition: form-data; name="languages"\r\n\r\nen\r\n--B--\r\n'
    form = {"content-type": "multipart/form-data; boundary=B"}
    assert "no file" in error_of(client.post("/api/v1/ocr", content=fields_only, headers=form), 400, "INVALID_REQUEST")
    two = [("file", ("a.png", png, "image/png")), ("other", ("b.png", png, "image/png"))]
    error_of(client.post("/api/v1/ocr", files=two), 400, "INVALID_REQUEST")
    error_of(client.post("/api/v1/ocr", files={"file": ("a.txt", b"hello", "text/plain")}), 415, "UNSUPPORTED_MEDIA")
    no_boundary = {"content-type": "multipart/form-data"}
    error_of(client.post("/api/v1/ocr", content=png, headers=no_boundary), 400, "INVALID_REQUEST")


def test_multipart_is_documented(client: httpx.Client) -> None:
    content = client.get("/openapi.json").json()["paths"]["/api/v1/ocr"]["post"]["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"


# -- sniffing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("media", [None, "application/octet-stream", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_generic_types_are_sniffed(client: httpx.Client, media: str | None, fmt: str) -> None:
    image = pattern(6, 8, channels=1)
    data = encode(image, fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    headers = {} if media is None else {"content-type": media}
    response = client.post("/api/v1/ocr", content=data, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (8, 6)
    if fmt in ("PNG", "BMP", "TIFF"):  # JPEG and WebP are lossy, GIF comes back as a palette
        assert body["checksum"] == crc(image)


def test_raw_pixels_sent_the_curl_way(client: httpx.Client) -> None:
    image = pattern(5, 6)
    response = client.post("/api/v1/ocr?height=5&width=6&channels=3", content=image.tobytes(), headers=CURL_FORM)
    assert response.status_code == 200, response.text
    assert response.json()["checksum"] == crc(image)


def test_generic_body_that_is_no_image_is_415(client: httpx.Client) -> None:
    for headers in ({}, RAW, CURL_FORM):
        response = client.post("/api/v1/ocr", content=b"hello, world", headers=headers)
        message = error_of(response, 415, "UNSUPPORTED_MEDIA")
        assert "height" in message  # says how to send raw pixels instead


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_commands_users_type(null_service: ServiceProcess, tmp_path: Path) -> None:
    image = pattern(9, 10)
    shot = tmp_path / "shot.png"
    shot.write_bytes(encode(image, "PNG"))
    url = f"{null_service.base_url}/api/v1/ocr"
    for how in (["-F", f"file=@{shot}"], ["--data-binary", f"@{shot}"]):
        out = subprocess.run(["curl", "-sS", "--max-time", "30", *how, url], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert httpx.Response(200, content=out.stdout).json()["checksum"] == crc(image), out.stdout
