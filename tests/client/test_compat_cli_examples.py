"""The seed-compatible facade, the ``ocr`` and ``status`` commands, and the examples, against a live service."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import shmbridge
from shmbridge import shared_memory_client
from tests.support.service import RunningService

from .helpers import full_checksum, image

REPO = Path(__file__).resolve().parents[2]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_old_client_snippet_runs_as_written(service: RunningService, tmp_path: Path) -> None:
    array = image(1)
    png = _png(array)
    (tmp_path / "a.png").write_bytes(png)

    async def main() -> None:
        image_data = png
        async with shared_memory_client(service.url) as client:
            result = await client.process_ocr(image_data=image_data)
            assert isinstance(result.text, str)
            assert result.communication_mode == "shared_memory"
            assert result.processing_time_ms >= 0
            assert result.checksum == full_checksum(array)
            for given in (base64.b64encode(png).decode(), array, Image.fromarray(array), str(tmp_path / "a.png")):
                again = await client.process_ocr(image_data=given, recognition_level="fast", languages=["en-US"],
                                                 custom_words=["shmbridge"], minimum_text_height=0.1,
                                                 request_id="req-1")  # fmt: skip
                assert again.checksum == full_checksum(array)
            forced = await client.process_ocr(image_data=png, force_http=True, request_id="req-2")
            assert forced.communication_mode == "http"
            assert forced.request_id == "req-2"
            assert forced.bounding_boxes == [] and forced.error is None
            info = await client.get_service_info()
            assert info["modes"]["shm_session"] is True
            await client.cleanup()

    asyncio.run(main())


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shmbridge.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, cwd=REPO)  # fmt: skip


def test_cli_ocr_and_status(service: RunningService, tmp_path: Path) -> None:
    array = image(2, 60, 80)
    (tmp_path / "one.png").write_bytes(_png(array))
    (tmp_path / "two.png").write_bytes(_png(image(3)))

    done = _cli("ocr", str(tmp_path / "one.png"), "--url", service.url, "--json", "--roi", "0,0,40,30")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["file"].endswith("one.png")
    assert result["communication_mode"] == "shared_memory"
    assert result["checksum"] == full_checksum(array[:30, :40])

    done = _cli("ocr", str(tmp_path / "one.png"), str(tmp_path / "two.png"), "--url", service.url, "--mode", "http")
    assert done.returncode == 0, done.stderr
    assert "==> " in done.stdout and "two.png <==" in done.stdout

    done = _cli("ocr", str(tmp_path / "missing.png"), "--url", service.url)
    assert done.returncode == 1
    assert "missing.png" in done.stderr and "Traceback" not in done.stderr

    done = _cli("status", "--url", service.url)
    assert done.returncode == 0, done.stderr
    for expected in ("status", "ok", "null", "shm_session", str(service.socket_path.name), "zero-copy",
                     "low-latency mode"):  # fmt: skip
        assert expected in done.stdout
    done = _cli("status", "--url", service.url, "--json")
    assert json.loads(done.stdout)["health"]["ready"] is True

    done = _cli("status", "--url", "http://127.0.0.1:1", "--timeout", "1")
    assert done.returncode == 2
    assert "SERVICE_UNAVAILABLE" in done.stderr and "Traceback" not in done.stderr


def test_the_examples_run_against_a_live_service(service: RunningService) -> None:
    env = {"SHMBRIDGE_URL": service.url, "SHMBRIDGE_SOCKET_PATH": str(service.socket_path)}
    outputs = {}
    for name in ("quickstart_sync.py", "quickstart_async.py", "zero_copy_frame.py"):
        done = subprocess.run([sys.executable, str(REPO / "examples" / name)], capture_output=True, text=True,
                              timeout=60, env={**os.environ, **env})  # fmt: skip
        assert done.returncode == 0, f"{name}:\n{done.stdout}\n{done.stderr}"
        outputs[name] = done.stdout
    assert "shared_memory" in outputs["quickstart_sync.py"]
    assert "8 images over shared_memory" in outputs["quickstart_async.py"]
    assert "frame 2: shared_memory" in outputs["zero_copy_frame.py"]


def test_the_public_surface_is_curated() -> None:
    assert shmbridge.__version__
    for name in shmbridge.__all__:
        assert hasattr(shmbridge, name), name
    assert shmbridge.errors.ShmBridgeError is shmbridge.ShmBridgeError
    assert issubclass(shmbridge.SessionLimitExceeded, shmbridge.LimitExceeded)
    assert issubclass(shmbridge.ClientResult, shmbridge.OcrResult)
