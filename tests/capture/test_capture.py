"""Screen capture on a real Xvfb with real X programs, through real services, checked against ``xwd``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shmbridge import AsyncClient, Client
from shmbridge.capture import FORCE_COPY_ENV, Screen
from shmbridge.errors import CaptureUnavailable
from tests.support.service import RunningService, metric, running_service
from tests.support.xserver import XServer, missing_tools, wait_for, xterm_showing, xvfb, xwd_root

_missing = missing_tools("xterm", "xwd")
pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(_missing is not None, reason=_missing or ""),
    pytest.mark.skipif(importlib.util.find_spec("xcffib") is None, reason="xcffib (the capture extra) missing"),
]

TEXT = "Quarterly report ready\nInvoice 4471 paid\n"


@pytest.fixture(scope="module")
def screen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[XServer, Path]]:
    """A 1280x720 Xvfb showing an xterm that prints ``text.txt`` and follows it."""
    folder = tmp_path_factory.mktemp("screen")
    text_file = folder / "text.txt"
    text_file.write_text(TEXT)
    with xvfb() as server, xterm_showing(server, text_file):
        assert wait_for(lambda: xwd_root(server)[:, :, :3].min() < 64), "xterm drew nothing"
        time.sleep(0.5)  # the last glyphs
        yield server, text_file


@pytest.fixture(scope="module")
def null_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("null"), "--engine-option", "checksum_mode=full") as service:
        yield service


@pytest.fixture(scope="module")
def ocr_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    if importlib.util.find_spec("rapidocr") is None:
        pytest.skip("rapidocr is not installed")
    with running_service(tmp_path_factory.mktemp("ocr"), "--workers", "1", engine="rapidocr") as service:
        yield service


def test_capture_equals_xwd_and_travels_by_reference(screen: tuple[XServer, Path], null_service: RunningService):
    server, _ = screen
    reference = xwd_root(server)
    before = null_service.metrics_text()
    with Client(null_service.url, socket=null_service.socket_path, mode="shm") as client:
        with client.capture(display=server.display) as shot:
            assert shot.method == "shared_memory" and shot.warnings == ()
            assert shot.array.shape == (720, 1280, 4)
            assert np.array_equal(shot.array[:, :, :3], reference[:, :, :3])
            result = client.ocr(shot)
        assert result.communication_mode == "shared_memory" and result.warnings == []
        # The null engine takes BGRA as it is: nobody copied the pixels, on either side.
        after = null_service.metrics_text()
        copied = metric(after, "shmbridge_bytes_copied_total", mode="shm_session")
        assert copied == metric(before, "shmbridge_bytes_copied_total", mode="shm_session")
        zero_copy = metric(after, "shmbridge_zero_copy_requests_total", mode="shm_session")
        assert zero_copy == metric(before, "shmbridge_zero_copy_requests_total", mode="shm_session") + 1


def test_a_region_is_captured_in_place(screen: tuple[XServer, Path], null_service: RunningService) -> None:
    server, _ = screen
    reference = xwd_root(server)
    with Client(null_service.url, socket=null_service.socket_path, mode="shm") as client:
        with client.capture((8, 4, 300, 60), display=server.display) as shot:
            assert shot.method == "shared_memory"
            assert np.array_equal(shot.array[:, :, :3], reference[4:64, 8:308, :3])
        with pytest.raises(Exception, match="leaves the 1280x720 screen"):
            client.capture((1200, 0, 200, 10), display=server.display).__enter__()


def test_ocr_of_a_capture_finds_the_text_and_counts_the_engine_conversion(
    screen: tuple[XServer, Path], ocr_service: RunningService
) -> None:
    server, _ = screen
    before = ocr_service.metrics_text()
    client = Client(ocr_service.url, socket=ocr_service.socket_path, mode="shm")
    with client, client.capture(display=server.display) as shot:
        result = client.ocr(shot)
    assert result.communication_mode == "shared_memory"
    text = result.text.lower()
    assert "quarterly report ready" in text and "invoice 4471 paid" in text, result.text
    # RapidOCR reads BGR: the service converts the BGRA frame once (width x height x 3 bytes) and says so.
    copied = metric(ocr_service.metrics_text(), "shmbridge_bytes_copied_total", mode="shm_session")
    assert copied - metric(before, "shmbridge_bytes_copied_total", mode="shm_session") == 1280 * 720 * 3


def test_async_capture(screen: tuple[XServer, Path], null_service: RunningService) -> None:
    server, _ = screen
    reference = xwd_root(server)

    async def main() -> tuple[str, bool, str]:
        async with AsyncClient(null_service.url, socket=null_service.socket_path, mode="shm") as client:
            async with client.capture(display=server.display) as shot:
                same = np.array_equal(shot.array[:, :, :3], reference[:, :, :3])
                result = await client.ocr(shot)
            return shot.method, same, result.communication_mode

    assert asyncio.run(main()) == ("shared_memory", True, "shared_memory")


def test_segments_are_detached_when_sessions_close(screen: tuple[XServer, Path], null_service: RunningService):
    server, _ = screen
    baseline = server.memfd_mappings()
    for _ in range(100):
        client = Client(null_service.url, socket=null_service.socket_path, mode="shm")
        with client, client.capture((0, 0, 320, 200), display=server.display) as shot:
            assert shot.method == "shared_memory"
            client.ocr(shot)
    assert wait_for(lambda: server.memfd_mappings() <= baseline, timeout=10), server.memfd_mappings()


@pytest.mark.parametrize("forced_by", ["environment", "display without MIT-SHM"])
def test_the_copying_capture_warns_and_still_works(
    forced_by: str, screen: tuple[XServer, Path], null_service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    if forced_by == "environment":
        monkeypatch.setenv(FORCE_COPY_ENV, "1")
        _check_copy(screen[0], null_service, f"{FORCE_COPY_ENV} is set")
        return
    with xvfb(640, 360, "-extension", "MIT-SHM") as bare:
        _check_copy(bare, null_service, "no MIT-SHM extension")


def _check_copy(server: XServer, service: RunningService, reason: str) -> None:
    reference = xwd_root(server)
    client = Client(service.url, socket=service.socket_path, mode="shm")
    with client, client.capture(display=server.display) as shot:
        assert shot.method == "capture_copy"
        assert np.array_equal(shot.array[:, :, :3], reference[:, :, :3])
        result = client.ocr(shot)
    assert result.communication_mode == "shared_memory"  # the slot still travels by reference
    assert any(reason in warning and "capture_copy" in warning for warning in result.warnings), result.warnings


def test_missing_display_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(CaptureUnavailable, match="set DISPLAY"):
        Screen()
    with pytest.raises(CaptureUnavailable, match="cannot connect to X display ':97'"):
        Screen(":97")


def test_the_readme_capture_example_runs(screen: tuple[XServer, Path], ocr_service: RunningService) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Screen capture (X11)", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    code = code.replace("http://127.0.0.1:8080", ocr_service.url)
    env = {**os.environ, "DISPLAY": screen[0].display, "SHMBRIDGE_SOCKET_PATH": str(ocr_service.socket_path)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr
    *text, first_step, second_step, third_step = run.stdout.splitlines()
    assert text[0].startswith("shared_memory ") and "Invoice 4471 paid" in "\n".join(text), run.stdout
    assert first_step.startswith("True [") and "Invoice 4471 paid" in first_step, run.stdout
    assert second_step == third_step == "False [] []", run.stdout


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xcffib", None)  # import xcffib now raises ImportError
    with pytest.raises(CaptureUnavailable, match=r"pip install 'shmbridge\[capture\]'"):
        Screen(":0")


def test_watch_once_prints_every_line_with_its_box(screen: tuple[XServer, Path], ocr_service: RunningService):
    server, _ = screen
    done = subprocess.run([sys.executable, "-m", "shmbridge.cli", "watch", "--once", "--url", ocr_service.url,
                           "--socket", str(ocr_service.socket_path), "--display", server.display],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert any(row.startswith("+ [") and row.endswith("] Invoice 4471 paid") for row in printed), done.stdout
    assert done.stderr == ""  # shared memory worked: no warning


def test_watch_reports_a_new_line_and_is_quiet_while_the_screen_stands_still(
    screen: tuple[XServer, Path], ocr_service: RunningService, tmp_path: Path
) -> None:
    server, text_file = screen
    out = tmp_path / "watch.jsonl"
    args = [sys.executable, "-m", "shmbridge.cli", "watch", "--json", "--interval", "0.2", "--frames", "150",
            "--url", ocr_service.url, "--socket", str(ocr_service.socket_path),
            "--display", server.display]  # fmt: skip
    with open(out, "wb") as sink:
        watcher = subprocess.Popen(args, stdout=sink, stderr=subprocess.PIPE, env={**os.environ, "DISPLAY": ""})
    try:
        assert wait_for(lambda: _frames(out), timeout=60), watcher.stderr.read() if watcher.poll() else "no frame"
        first = _frames(out)[0]
        assert first["frame"] == 0 and first["capture"] == "shared_memory"
        assert "Invoice 4471 paid" in " ".join(line["text"] for line in first["added"])
        time.sleep(2.0)  # about ten captures of a still screen
        assert len(_frames(out)) == 1, "watch printed frames while the screen stood still"
        with text_file.open("a") as appended:
            appended.write("Shipment 9902 delayed\n")
        assert wait_for(lambda: len(_frames(out)) >= 2, timeout=60), "watch missed the new line"
        change = _frames(out)[1]
        assert [line["text"] for line in change["added"]] == ["Shipment 9902 delayed"]
        assert change["removed"] == []
        assert first["keyframe"] is True and first["stream"] == "screen"
        assert change["keyframe"] is False  # the service's stream read only what changed
        assert change["rects"] and all(rect["height"] < 200 for rect in change["rects"])
        box = change["added"][0]["box"]
        assert box["x"] < 60 and box["y"] > 40  # below the first two lines, at the left edge
    finally:
        watcher.terminate()
        watcher.wait(10)
        watcher.stderr.close()


def _frames(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
