"""Nothing the user touches is silent: fallbacks say why, variables have one name, ``diagnose`` and ``status``
test the socket. Against a real null-engine service (the shared ``service`` fixture)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shmbridge import AsyncClient, Client, Diagnosis, FrameTooLarge, SessionLimitExceeded
from shmbridge.client.session import AsyncSessionClient
from tests.support.service import RunningService, running_service

from .helpers import full_checksum, image

REPO = Path(__file__).resolve().parents[2]
NOPE = "/run/nope.sock"


def test_a_wrong_socket_falls_back_with_the_reason_in_warnings_and_one_log_line(
    service: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shmbridge.client")
    with Client(service.url, socket=NOPE) as client:
        results = [client.ocr(image(seed)) for seed in (1, 2)]
    for seed, result in zip((1, 2), results, strict=True):
        assert result.communication_mode == "http_fallback"
        assert result.checksum == full_checksum(image(seed))
        assert any(f"socket {NOPE}: No such file or directory" in warning for warning in result.warnings)
    logged = [record for record in caplog.records if NOPE in record.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING  # once per cause, not per call


def test_shared_memory_results_carry_no_fallback_warning(service: RunningService) -> None:
    with Client(service.url) as client:
        result = client.ocr(image(3))
    assert result.communication_mode == "shared_memory" and result.warnings == []


def test_client_reads_the_service_variable_names(service: RunningService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHMBRIDGE_URL", service.url)
    monkeypatch.setenv("SHMBRIDGE_SOCKET_PATH", str(service.socket_path))
    with Client() as client:
        assert client.url == service.url
        assert client.socket_source == "SHMBRIDGE_SOCKET_PATH"
        assert client.ocr(image(4)).communication_mode == "shared_memory"


def test_the_old_socket_variable_works_with_a_warning(service: RunningService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHMBRIDGE_SOCKET", str(service.socket_path))
    with pytest.warns(FutureWarning, match="SHMBRIDGE_SOCKET_PATH"), Client(service.url) as client:
        assert client.socket_source == "SHMBRIDGE_SOCKET (deprecated)"
        assert client.ocr(image(5)).communication_mode == "shared_memory"


def test_diagnose_walks_every_step(service: RunningService) -> None:
    with Client(service.url) as client:
        report = client.diagnose()
        assert client.ocr(image(6)).communication_mode == "shared_memory"  # its own session is untouched
    assert isinstance(report, Diagnosis)
    assert report.url_reachable and report.service_ready
    assert report.socket_path == str(service.socket_path) and report.socket_source == "service"
    assert report.socket_reachable and report.peer_accepted and report.handshake and report.round_trip
    assert report.round_trip_ms is not None and report.round_trip_ms > 0
    assert report.fallback_reason is None and report.shared_memory


def test_diagnose_names_what_fails_on_a_wrong_socket(service: RunningService) -> None:
    async def main() -> Diagnosis:
        async with AsyncClient(service.url, socket=NOPE) as client:
            return await client.diagnose()

    report = asyncio.run(main())
    assert report.url_reachable and report.socket_source == "argument" and report.socket_asked_for
    assert report.socket_reachable is False and report.handshake is None and report.round_trip is None
    assert report.fallback_reason == f"socket {NOPE}: No such file or directory"


def test_async_diagnose_round_trips_and_async_session_has_welcome(service: RunningService) -> None:
    async def main() -> tuple[Diagnosis, str, int]:
        async with AsyncClient(service.url) as client:
            report = await client.diagnose()
        async with AsyncSessionClient(service.socket_path) as session:
            return report, session.welcome.session_id, session.welcome.version

    report, session_id, version = asyncio.run(main())
    assert report.round_trip and report.protocol_version == version
    assert session_id


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHMBRIDGE_")}
    return subprocess.run([sys.executable, "-m", "shmbridge", *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})}, cwd=REPO)  # fmt: skip


def test_status_tests_the_socket_it_is_given(service: RunningService) -> None:
    wrong = _cli("status", "--url", service.url, "--socket", NOPE)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "No such file or directory" in wrong.stdout and "Traceback" not in wrong.stderr
    right = _cli("status", "--json", env={"SHMBRIDGE_URL": service.url,
                                          "SHMBRIDGE_SOCKET_PATH": str(service.socket_path)})  # fmt: skip
    assert right.returncode == 0, right.stderr
    report = json.loads(right.stdout)["diagnosis"]
    assert report["round_trip"] is True and report["socket_source"] == "SHMBRIDGE_SOCKET_PATH"


def test_ocr_in_text_mode_says_why_it_fell_back(service: RunningService, tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(image(7)).save(tmp_path / "a.png")
    done = _cli("ocr", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--url", service.url, "--socket", NOPE)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if NOPE in line]
    assert len(warned) == 1 and "No such file or directory" in warned[0]  # once for both inputs


def test_limit_errors_name_the_flag_that_raises_the_limit(tmp_path: Path) -> None:
    with running_service(tmp_path, "--max-pixels", "1000", "--max-sessions", "1") as service:
        with Client(service.url, mode="http") as client, pytest.raises(FrameTooLarge) as raised:
            client.ocr(image(8))  # 64x48 pixels
        assert "--max-pixels / SHMBRIDGE_MAX_PIXELS" in raised.value.message
        with Client(service.url, mode="shm") as first, Client(service.url, mode="shm") as second:
            assert first.session_active
            with pytest.raises(SessionLimitExceeded) as refused:
                second.ocr(image(9, 8, 8))
        assert "--max-sessions / SHMBRIDGE_MAX_SESSIONS" in refused.value.message
