"""The README's quick start runs as written against a live service (only the service's address changes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.support.service import RunningService

REPO = Path(__file__).resolve().parents[2]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def quick_start_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_quick_start_has_the_sync_async_and_old_client_examples() -> None:
    blocks = quick_start_blocks()
    assert len(blocks) == 3
    assert "shmbridge.Client(" in blocks[0] and "client.frame(" in blocks[0]
    assert "shmbridge.AsyncClient(" in blocks[1]
    assert "shared_memory_client(" in blocks[2] and "process_ocr(image_data=image)" in blocks[2]


@pytest.mark.parametrize("index", range(3), ids=["sync-and-frame", "async", "old-client"])
def test_quick_start_block_runs(index: int, service: RunningService, tmp_path: Path) -> None:
    image = Image.new("RGB", (400, 80), "white")
    ImageDraw.Draw(image).text((10, 20), "Save changes?", fill="black", font=ImageFont.truetype(FONT, 28))
    image.save(tmp_path / "screenshot.png")
    code = quick_start_blocks()[index]
    code = code.replace("http://127.0.0.1:8080", service.url).replace("http://localhost:8080", service.url)
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SHMBRIDGE_SOCKET")},  # discovered
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()
    if index == 0:
        assert run.stdout.count("shared_memory") == 2, run.stdout
    if index == 2:
        assert "shared_memory" in run.stdout, run.stdout


def test_the_streams_block_runs(service: RunningService, tmp_path: Path) -> None:
    """The "Screen streams" section's example, against a live service: the second frame is not a
    keyframe and only the changed part was read."""
    (code,) = readme_section_blocks("Screen streams")
    run = subprocess.run(
        [sys.executable, "-c", code.replace("http://127.0.0.1:8080", service.url)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SHMBRIDGE_SOCKET")},
    )
    assert run.returncode == 0, run.stderr
    first = run.stdout.splitlines()[0]
    assert first.startswith("False [Roi(") and "y=" in first, run.stdout


def readme_section_blocks(title: str) -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
