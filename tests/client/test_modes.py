"""Which transport a call takes, what it reports, and what every kind of input costs."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import shmbridge
from shmbridge import Client, Mode, ServiceUnavailable
from tests.support.service import RunningService, running_service

from .helpers import FULL, full_checksum, image


def test_auto_discovers_the_socket_and_uses_shared_memory(service: RunningService) -> None:
    with Client(service.url) as client:
        assert client.state is shmbridge.Lifecycle.OPENED
        assert client.socket_path == service.socket_path
        array = image(1)
        result = client.ocr(array)
        assert result.communication_mode == "shared_memory"
        assert result.checksum == full_checksum(array)
        assert result.total_time_ms >= result.processing_time_ms > 0


def test_socket_from_the_environment_wins_over_discovery(service: RunningService, monkeypatch) -> None:
    monkeypatch.setenv("SHMBRIDGE_SOCKET_PATH", str(service.socket_path))
    with Client("http://127.0.0.1:1") as client:  # HTTP unreachable: only the socket can serve
        assert client.ocr(image(2)).communication_mode == "shared_memory"
        assert client.info()["source"] == "session"  # built from WELCOME when HTTP is down


def test_http_mode_sends_raw_pixels_and_never_opens_a_session(service: RunningService) -> None:
    with Client(service.url, mode="http") as client:
        array = image(3)
        result = client.ocr(array)
        assert result.communication_mode == "http"
        assert result.checksum == full_checksum(array)
        assert not client.session_active


def test_without_shared_memory_auto_reports_http_or_fallback(tmp_path: Path) -> None:
    """No socket anywhere: plain ``http``. A socket the caller named that does not work: ``http_fallback``."""
    with running_service(tmp_path, *FULL, shm=False) as service:
        with Client(service.url) as client:
            assert client.ocr(image(4)).communication_mode == "http"
        with Client(service.url, socket=service.socket_path) as client:
            result = client.ocr(image(5))
            assert result.communication_mode == "http_fallback"
            assert result.checksum == full_checksum(image(5))
        for socket in (service.socket_path, None):  # mode="shm" never falls back
            with Client(service.url, socket=socket, mode=Mode.SHM) as client, pytest.raises(ServiceUnavailable):
                client.ocr(image(6))
        with Client(service.url, mode="http") as client:
            assert client.metrics()["fallbacks"] == 1  # only the call marked X-Shmbridge-Fallback


@pytest.mark.parametrize("mode", ["auto", "http"])
def test_every_input_kind_reaches_the_engine_intact(service: RunningService, tmp_path: Path, mode: str) -> None:
    rgb = image(10, 37, 53)
    rgba = image(11, 20, 30, 4)
    gray = image(12, 25, 41, 1)
    strided = image(13, 90, 120)[5:80:3, 7:110:2]  # any strides: copied once, packed
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    path = tmp_path / "rgb.png"
    path.write_bytes(png.getvalue())
    expected_mode = "shared_memory" if mode == "auto" else "http"
    cases = [
        (rgb, {}, rgb),
        (rgba, {}, rgba),
        (gray, {}, gray),
        (gray[:, :, None], {}, gray),
        (strided, {}, np.ascontiguousarray(strided)),
        (rgb, {"pixel_format": "bgr"}, rgb),
        (Image.fromarray(rgb), {}, rgb),
        (Image.fromarray(gray).convert("1"), {}, np.asarray(Image.fromarray(gray).convert("1").convert("L"))),
        (png.getvalue(), {}, rgb),
        (path, {}, rgb),
        (str(path), {}, rgb),
    ]
    with Client(service.url, mode=mode) as client:
        for given, kwargs, pixels in cases:
            result = client.ocr(given, **kwargs)
            assert result.communication_mode == expected_mode
            assert (result.height, result.width) == pixels.shape[:2]
            assert result.checksum == full_checksum(pixels), type(given)
        roi = client.ocr(rgb, roi=(3, 4, 10, 12))
        assert roi.checksum == full_checksum(rgb[4:16, 3:13])


def test_bad_inputs_raise_typed_errors_before_sending(service: RunningService) -> None:
    with Client(service.url) as client:
        with pytest.raises(shmbridge.InvalidRequest):
            client.ocr(np.zeros((4, 4, 3), np.float32))
        with pytest.raises(shmbridge.InvalidRequest):
            client.ocr(np.zeros((4, 4, 2), np.uint8))
        with pytest.raises(shmbridge.InvalidRequest):
            client.ocr(image(1), pixel_format="rgba")
        with pytest.raises(shmbridge.InvalidRequest):
            client.ocr(b"not an image")
        with pytest.raises(shmbridge.InvalidRequest):
            client.ocr(image(1), colour="blue")
        with pytest.raises(shmbridge.InvalidRequest):  # the service checks the region against the image
            client.ocr(image(1), roi="40,40,100,100")
        with pytest.raises(shmbridge.UsageError):
            client.ocr(12345)


def test_async_client_matches_the_blocking_one(service: RunningService) -> None:
    async def main() -> None:
        async with shmbridge.AsyncClient(service.url) as client:
            array = image(20)
            result = await client.ocr(array, languages=["en-US", "de-DE"])
            assert result.communication_mode == "shared_memory"
            assert result.checksum == full_checksum(array)
            assert await client.detect_text(array) == []
            batch = await client.ocr_batch([image(i) for i in range(5)])
            assert [r.checksum for r in batch] == [full_checksum(image(i)) for i in range(5)]
            assert (await client.health())["ready"] is True
            assert (await client.info())["socket_path"] == str(service.socket_path)
            assert "zero_copy_ratio" in await client.metrics()
        async with shmbridge.AsyncClient(service.url, mode="http") as client:
            assert (await client.ocr(image(21))).communication_mode == "http"

    asyncio.run(main())


def test_the_transport_policy_keeps_its_old_names() -> None:
    """``mode=`` is a ``TransportPolicy`` (which transports a client may use); ``Mode``, ``client.mode`` and
    ``low_latency_mode`` still work, now that "mode" means only how a call travelled."""
    from shmbridge.models import LowLatencyMode, LowLatencyState, low_latency_mode, low_latency_state

    assert shmbridge.Mode is shmbridge.TransportPolicy and Mode.SHM is shmbridge.TransportPolicy.SHM
    client = Client("http://127.0.0.1:1", mode="http")
    assert client.mode is client.transport_policy is shmbridge.TransportPolicy.HTTP
    assert "mode=http" in repr(client)
    client.mode = "auto"
    assert client.transport_policy is shmbridge.TransportPolicy.AUTO
    with pytest.raises(ValueError):
        client.mode = "carrier pigeon"
    client.close()
    assert low_latency_mode is low_latency_state and LowLatencyMode is LowLatencyState
    assert low_latency_state({"enabled": True, "available": False}) == "unavailable"
