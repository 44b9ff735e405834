"""``python -m shmbridge.bench.streams`` runs as its own process on a small sequence drawn here, laid out
like the fixture sequences (frames, truth files, steps.json, the shared score.py beside them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from shmbridge.bench import synthetic

from ..engines.conftest import FIXTURES, require_fonts
from .conftest import LINE_HEIGHT, WORDS

SCORER = FIXTURES / "screens" / "score.py"

pytestmark = pytest.mark.timeout(600)


def _frame(folder: Path, index: int, lines: list[str], action: str) -> dict[str, object]:
    canvas = Image.new("RGB", (480, 12 + LINE_HEIGHT * len(lines) + 12), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = synthetic._font("sans", 20)
    words, boxes = [], []
    for row, text in enumerate(lines):
        x, y = 16, 12 + row * LINE_HEIGHT
        draw.text((x, y), text, fill=(20, 20, 20), font=font)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        boxes.append({"text": text, "x": left, "y": top, "w": right - left, "h": bottom - top})
        for word in text.split():
            start = x + draw.textlength(text[: text.index(word)], font=font)
            wl, wt, wr, wb = draw.textbbox((start, y), word, font=font)
            words.append({"text": word, "x": wl, "y": wt, "w": wr - wl, "h": wb - wt})
    name = f"{index:03d}"
    canvas.save(folder / f"{name}.png")
    (folder / f"{name}.json").write_text(json.dumps({"words": words, "lines": boxes, "ignore": []}))
    return {"frame": f"{name}.png", "truth": f"{name}.json", "action": action}


@pytest.mark.parametrize(
    ("flags", "says"),
    [((), "through Client over shared memory"), (("--in-process",), "called in-process")],
    ids=["client", "in-process"],
)
def test_the_benchmark_replays_a_sequence_and_scores_it(tmp_path: Path, flags: tuple[str, ...], says: str) -> None:
    require_fonts()
    if not SCORER.is_file():
        pytest.skip(f"{SCORER} is absent (the screen fixtures live next to the checkout)")
    shutil.copy(SCORER, tmp_path / "score.py")
    folder = tmp_path / "seq-drawn"
    folder.mkdir()
    steps = [
        _frame(folder, 0, WORDS[:8], "load"),
        _frame(folder, 1, [WORDS[0], "Save changes now", *WORDS[2:8]], "type"),
    ]
    (folder / "steps.json").write_text(json.dumps({"steps": steps}))
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "shmbridge.bench.streams", "--sequences", str(tmp_path), "--repeats", "1",
         "--json", str(out), *flags],
        capture_output=True, text=True, timeout=500, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert says in done.stdout
    report = json.loads(out.read_text())
    (run,) = report["runs"]
    first, second = run["steps"]
    assert first["stream"]["keyframe"] == "first" and second["stream"]["keyframe"] is None
    assert second["stream"]["f1_vs_full"] == pytest.approx(1.0)
    assert run["recall"]["stream"] == pytest.approx(run["recall"]["full"]) and run["recall"]["full"] > 0.9
    assert report["summary"]["stream"]["unchanged_ms"]["n"] == 2 and second["stream"]["reused"] >= 2
