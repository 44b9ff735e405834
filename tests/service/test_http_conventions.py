"""HTTP conventions of a real ``shmbridge serve``: separate liveness and readiness, an access log at INFO
(off with ``--no-access-log``), and per-session housekeeping kept out of the INFO log."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import numpy as np

from shmbridge import Client

from .service_helpers import ServiceProcess, pattern, wait_until

#: ``client "METHOD /path?query" status bytes time [id=...]`` (see service/http/access.py).
ACCESS_LINE = re.compile(r'INFO shmbridge\.access: 127\.0\.0\.1:\d+ "(\w+) (\S+)" (\d{3}) (\d+)B [\d.]+ms')


def test_health_live_and_ready(client: httpx.Client) -> None:
    live = client.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json().keys() == client.get("/health").json().keys()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/health/live", "/health/ready"} <= paths.keys()


def test_access_log_names_each_request(null_service: ServiceProcess, client: httpx.Client) -> None:
    image = pattern(3, 4)
    client.post("/api/v1/ocr?height=3&width=4&request_id=access-1", content=image.tobytes(),
                headers={"content-type": "application/octet-stream"})  # fmt: skip
    client.get("/no/such/path")

    def logged() -> list[tuple[str, ...]]:
        return ACCESS_LINE.findall(null_service.log())

    assert wait_until(lambda: ("GET", "/no/such/path", "404") in [line[:3] for line in logged()], timeout=10)
    ocr = [line for line in logged() if line[1].startswith("/api/v1/ocr?") and "access-1" in line[1]]
    assert ocr and ocr[-1][2] == "200" and int(ocr[-1][3]) > 0
    assert "id=access-1" in null_service.log()


def test_no_access_log_and_quiet_sessions(service_factory: Callable[..., ServiceProcess]) -> None:
    service = service_factory("--no-access-log", "--no-warm-up")
    with service.client() as http:
        assert http.get("/health/live").status_code == 200
    with Client(service.base_url, socket=service.socket_path, mode="shm") as shm:
        result = shm.ocr(np.ascontiguousarray(pattern(8, 8)), pixel_format="rgb")
    assert result.communication_mode == "shared_memory"
    service.stop()
    log = service.log()
    assert "shmbridge ready" in log  # the INFO log is on ...
    assert "shmbridge.access" not in log  # ... but the access log is not
    assert "released" not in log and " ends: " not in log  # per-session housekeeping is DEBUG
