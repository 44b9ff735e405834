"""Service lifecycle seen over HTTP: graceful SIGTERM with requests in flight, and where config comes from.

Precedence is flags > ``SHMBRIDGE_*`` environment > config file > defaults, checked both on
``ServiceConfig.load`` directly and on a real ``shmbridge serve``.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from shmbridge.config import ServiceConfig

from .service_helpers import ServiceProcess, b64, encode, pattern, wait_until

RAW = {"content-type": "application/octet-stream"}


def test_sigterm_drains_http_requests_in_flight(service_factory: Callable[..., ServiceProcess]) -> None:
    service = service_factory(
        "--engine-option", "delay_ms=1500",
        "--workers", "2",
        "--max-in-flight", "4",
        "--queue-size", "8",
        "--drain-timeout", "20",
        "--no-warm-up",
    )  # fmt: skip
    assert service.socket_path.exists()
    image = pattern(12, 12)
    png = b64(encode(image, "PNG"))
    client = service.client()
    with ThreadPoolExecutor(6) as pool:
        futures = [
            pool.submit(client.post, "/api/v1/ocr?height=12&width=12", content=image.tobytes(), headers=RAW)
            for _ in range(3)
        ] + [pool.submit(client.post, "/api/v1/vision/ocr", json={"image_data": png}) for _ in range(3)]
        assert wait_until(lambda: client.get("/health").json()["in_flight"] >= 4, timeout=20)
        service.signal(signal.SIGTERM)
        responses = [future.result(timeout=60) for future in futures]
    assert [response.status_code for response in responses] == [200] * 6, [r.text for r in responses]
    assert service.wait(timeout=60) == 0
    assert not service.socket_path.exists()
    log = service.log()
    assert "draining" in log and "shmbridge stopped" in log
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{service.base_url}/health", timeout=2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_config_precedence_on_a_real_service(service_factory: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    config = tmp_path / "shmbridge.toml"
    config.write_text(
        "[shmbridge]\nhttp_port = 1\nqueue_size = 5\nmax_sessions = 7\nmax_regions_per_client = 3\n"
        'engine_options = { checksum_mode = "full" }\n'
    )
    port = _free_port()
    service = service_factory(
        "--config", str(config), "--queue-size", "3", "--no-warm-up",
        env={"SHMBRIDGE_HTTP_PORT": str(port), "SHMBRIDGE_MAX_SESSIONS": "9"},
        port=None,
    )  # fmt: skip
    assert service.base_url.endswith(f":{port}")  # env beat the file's port 1
    limits = service.client().get("/api/v1/bridge/info").json()["limits"]
    assert limits["queue_size"] == 3  # flag beat file (5)
    assert limits["max_sessions"] == 9  # env beat file (7)
    assert limits["max_regions_per_client"] == 3  # file beat default (16)


def test_config_precedence_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[shmbridge]\nengine = "null"\nhttp_port = 1111\nqueue_size = 5\nmax_sessions = 7\n')
    json_file = tmp_path / "c.json"
    json_file.write_text('{"engine": "null", "http_port": 3333}')
    monkeypatch.setenv("SHMBRIDGE_HTTP_PORT", "2222")
    monkeypatch.setenv("SHMBRIDGE_QUEUE_SIZE", "6")
    monkeypatch.setenv("SHMBRIDGE_ENGINE_OPTIONS", '{"delay_ms": 5}')
    config = ServiceConfig.load(toml, queue_size=9, max_in_flight=None)
    assert (config.engine, config.http_port, config.queue_size, config.max_sessions) == ("null", 2222, 9, 7)
    assert config.engine_options == {"delay_ms": 5}
    assert ServiceConfig.load(toml).queue_size == 6
    assert ServiceConfig.load(json_file).http_port == 2222
    monkeypatch.delenv("SHMBRIDGE_HTTP_PORT")
    assert ServiceConfig.load(json_file).http_port == 3333
    assert ServiceConfig.load(None, engine="null").http_port == 8080


def test_env_values_are_validated_merged_not_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """An env value that is only valid together with a flag must not be refused against the defaults."""
    monkeypatch.setenv("SHMBRIDGE_SESSION_BYTES", str(6 << 30))  # more than the default total_bytes (4 GiB)
    config = ServiceConfig.load(None, engine="null", total_bytes=8 << 30)
    assert (config.session_bytes, config.total_bytes) == (6 << 30, 8 << 30)


def test_an_engine_stuck_past_its_timeout_does_not_hang_shutdown(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    """The caller gets 504 after engine_timeout, but the engine thread cannot be stopped. SIGTERM must still
    end the service within about engine_timeout (exit status 1, the reason logged), not wait for it."""
    service = service_factory("--engine-option", "delay_ms=120000", "--engine-timeout", "1", "--drain-timeout", "1",
                              "--no-warm-up")  # fmt: skip
    image = pattern(8, 8)
    with service.client() as client:
        response = client.post("/api/v1/ocr?height=8&width=8", content=image.tobytes(), headers=RAW)
        assert response.status_code == 504, response.text
    service.signal(signal.SIGTERM)
    assert service.wait(timeout=30) == 1
    assert "engine thread is still running" in service.log()
