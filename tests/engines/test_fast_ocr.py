"""Fast full-frame OCR: the two-resolution pipeline, per-stage times, levels, backends, the thread budget.

Everything runs the real RapidOCR models from the installed wheel, offline (the network guard is up for
the module's life). One onnxruntime engine with one thread serves the module; the OpenVINO and
missing-backend checks build their own. The 1080p synthetic desktop has exact line boxes, so "boxes
land in full-frame pixels" is checked against the ink, at several detection scales.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shmbridge.bench import synthetic
from shmbridge.config import ServiceConfig
from shmbridge.engines import create_engine
from shmbridge.engines.backends import DEFAULT_BACKEND, default_backend, installed
from shmbridge.engines.base import STAGES
from shmbridge.engines.ppocr import detection_size
from shmbridge.engines.rapidocr import RapidOcrEngine
from shmbridge.engines.threads import threads_per_worker, usable_cpus, with_thread_budget
from shmbridge.errors import EngineUnavailable
from shmbridge.models import OcrOptions, PixelFormat
from shmbridge.service.core import ServiceCore

from .conftest import bgr, require_fonts

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def engine(network_attempts: list[str]) -> Iterator[RapidOcrEngine]:
    built = create_engine("rapidocr", backend="onnxruntime", intra_op_threads=1)
    assert isinstance(built, RapidOcrEngine)
    built.warm_up()
    yield built
    built.close()


# -- two resolutions -------------------------------------------------------------------------------------


def test_detection_size_scales_down_only_and_rounds_to_32() -> None:
    assert detection_size(1080, 1920, 1280) == (704, 1280)
    assert detection_size(1080, 1920, 4000) == (1088, 1920)
    assert detection_size(60, 300, 1280) == (64, 288)
    assert detection_size(10, 10, 1280) == (32, 32)


def test_a_line_reads_the_same_alone_or_among_all_lines(engine: RapidOcrEngine, desktop: synthetic.Labelled) -> None:
    """Recognition does not depend on the other lines of the frame (``BatchPlan.invariant``): the lines of
    a few boxes, read alone, are the lines those boxes give when the whole frame's boxes are read."""
    image = bgr(desktop[0])
    boxes = engine.detect(image, 2000).boxes[:24]
    every = engine.read_boxes(image, boxes)
    some = list(range(0, len(boxes), 5))
    assert [every[i] for i in some] == engine.read_boxes(image, boxes[some])
    assert [every[1]] == engine.read_boxes(image, boxes[1:2])


@pytest.mark.parametrize("side", [1920, 1280, 960])
def test_boxes_land_in_full_frame_pixels(engine: RapidOcrEngine, desktop: synthetic.Labelled, side: int) -> None:
    """Detected at 1920, 1280 or 960 px wide, every drawn line's ink is covered by one detected box in the
    1920×1080 frame's pixels, no more than a few pixels (scaled by the detection's coarseness) off."""
    image, truth = desktop
    detected = engine.detect(bgr(image), side)
    assert detected.scale == pytest.approx(detection_size(1080, 1920, side)[1] / 1920)
    boxes = detected.boxes
    assert boxes.shape[1:] == (4, 2) and len(boxes) >= 0.9 * len(truth)
    assert boxes[:, :, 0].max() <= 1920 and boxes[:, :, 1].max() <= 1080
    slack = 4 + 2 / detected.scale  # DB pads boxes; a coarser bitmap rounds them to more pixels
    covered = 0
    for line in truth:
        cx, cy = line.box.x + line.box.width / 2, line.box.y + line.box.height / 2
        for quad in boxes:
            x0, y0 = quad.min(axis=0)
            x1, y1 = quad.max(axis=0)
            if x0 <= cx <= x1 and y0 <= cy <= y1:
                assert y0 >= line.box.y - line.box.height - slack, (line.text, quad.tolist())
                assert y1 <= line.box.y + 2 * line.box.height + slack, (line.text, quad.tolist())
                covered += 1
                break
    assert covered >= 0.95 * len(truth), f"{covered} of {len(truth)} lines found at side {side}"


# -- stage times -----------------------------------------------------------------------------------------


def test_stage_times_are_present_and_add_up(network_attempts: list[str]) -> None:
    """Through the service core: every stage is timed, the engine's stages fit inside engine_ms, and the
    service's parts inside total_ms; the Prometheus text has a histogram per stage for the engine."""
    require_fonts()
    image, truth = synthetic.panel_800x200()

    async def run() -> tuple[list, bytes]:
        config = ServiceConfig(
            engine="rapidocr",
            engine_options={"backend": "onnxruntime"},
            engine_workers=1,
            http_enabled=False,
            warm_up=True,
        )
        core = ServiceCore(config)
        try:
            await core.start()
            results = [await core.process(image, PixelFormat.RGB, OcrOptions(), mode="http_raw") for _ in range(2)]
            return results, core.metrics.prometheus_text()
        finally:
            core.close()

    results, prometheus = asyncio.run(run())
    for result in results:
        t = result.timings
        assert [line.text for line in result.lines] == [line.text for line in truth]
        assert t.detect_ms > 0 and t.recognize_ms > 0 and t.postprocess_ms > 0 and t.convert_ms > 0
        assert t.decode_ms == 0  # raw pixels: nothing was decoded
        assert t.detect_ms + t.recognize_ms + t.postprocess_ms <= t.engine_ms
        assert t.convert_ms + t.queue_ms + t.engine_ms <= t.total_ms
    text = prometheus.decode()
    for stage in (*STAGES, "convert"):
        assert f'shmbridge_stage_seconds_count{{engine="rapidocr",stage="{stage}"}} 2.0' in text, stage


# -- levels ----------------------------------------------------------------------------------------------


def test_fast_level_changes_the_configuration(engine: RapidOcrEngine) -> None:
    require_fonts()
    fast, accurate = OcrOptions(recognition_level="fast"), OcrOptions()
    assert engine.detect_side_for(fast) < engine.detect_side_for(accurate)
    assert engine.squeeze_for(fast) <= engine.squeeze_for(accurate) == 1.0
    assert engine.line_height_for(fast) < engine.line_height_for(accurate) == 48  # the model's height made free
    assert engine.capabilities()["recognition_levels"] == ["accurate", "fast"]
    image, truth = synthetic.button_300x60()
    output = engine.recognize(bgr(image), PixelFormat.BGR, fast)
    assert output.warnings == []  # no "not supported" warning any more
    assert [line.text for line in output.lines] == [truth[0].text]


# -- backends --------------------------------------------------------------------------------------------


def test_default_backend_is_onnxruntime() -> None:
    assert default_backend() == DEFAULT_BACKEND == "onnxruntime"
    assert create_engine("rapidocr", intra_op_threads=1).capabilities()["backend"] == "onnxruntime"


def test_openvino_backend_reads_like_onnxruntime(engine: RapidOcrEngine, network_attempts: list[str]) -> None:
    if not installed("openvino"):
        pytest.skip("openvino is not installed here: pip install 'shmbridge[openvino]'")
    require_fonts()
    image, _ = synthetic.panel_800x200()
    other = create_engine("rapidocr", backend="openvino", intra_op_threads=1)
    try:
        assert other.capabilities()["backend"] == "openvino"
        ours = engine.recognize(bgr(image), PixelFormat.BGR, OcrOptions())
        theirs = other.recognize(bgr(image), PixelFormat.BGR, OcrOptions())
        assert [line.text for line in theirs.lines] == [line.text for line in ours.lines]
    finally:
        other.close()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(EngineUnavailable, match="unknown rapidocr backend 'tensorflow'"):
        create_engine("rapidocr", backend="tensorflow")


def test_missing_backend_names_the_extra_to_install() -> None:
    """In a child interpreter where openvino cannot be imported (as if never installed)."""
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from shmbridge.engines import create_engine\n"
        "from shmbridge.errors import EngineUnavailable\n"
        "try:\n    create_engine('rapidocr', backend='openvino')\n"
        "except EngineUnavailable as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "rapidocr backend 'openvino' needs the openvino package" in done.stdout
    assert "pip install 'shmbridge[openvino]'" in done.stdout


# -- the thread budget -----------------------------------------------------------------------------------


def test_thread_budget_shares_the_cpus() -> None:
    assert threads_per_worker(2, cpus=2) == 1 and threads_per_worker(1, cpus=2) == 2
    assert threads_per_worker(4, cpus=2) == 1 and threads_per_worker(3, cpus=8) == 2
    assert with_thread_budget({"intra_op_threads": 3}, "intra_op_threads", 2) == {"intra_op_threads": 3}
    assert with_thread_budget({}, None, 2) == {}
    with pytest.raises(ValueError):
        threads_per_worker(0)


def test_thread_budget_follows_the_cpu_affinity() -> None:
    """A child process pinned to one CPU gives its single rapidocr worker one thread; unpinned, it gets
    every CPU this process may use."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("os.sched_setaffinity is Linux-only")
    cpus = sorted(os.sched_getaffinity(0))
    code = (
        "import json, os, sys\n"
        "if sys.argv[1] != 'all': os.sched_setaffinity(0, {int(sys.argv[1])})\n"
        "from shmbridge.service.engine_pool import EnginePool\n"
        "pool = EnginePool('rapidocr', {'backend': 'onnxruntime'}, 1)\n"
        "print(json.dumps(pool.capabilities()['intra_op_threads'])); pool.close()\n"
    )

    def threads(pin: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", code, pin], capture_output=True, text=True, timeout=120, check=True
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert threads(str(cpus[0])) == 1
    assert threads("all") == usable_cpus() == len(cpus)


def test_default_workers_follow_the_engine_and_the_cpu_affinity() -> None:
    """Without ``--workers``, rapidocr runs one worker per two usable CPUs (one when pinned to one CPU),
    other engines two; an explicit count always wins."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("os.sched_setaffinity is Linux-only")
    cpus = sorted(os.sched_getaffinity(0))
    code = (
        "import json, os, sys\n"
        "if sys.argv[1] != 'all': os.sched_setaffinity(0, {int(sys.argv[1])})\n"
        "from shmbridge.config import ServiceConfig\n"
        "print(json.dumps([ServiceConfig(engine=name, http_enabled=False).engine_workers\n"
        "                  for name in ('rapidocr', 'null')]))\n"
    )

    def workers(pin: str) -> list[int]:
        done = subprocess.run([sys.executable, "-c", code, pin], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert workers(str(cpus[0])) == [1, 2]
    assert workers("all") == [max(1, len(cpus) // 2), 2]
    assert ServiceConfig(engine="rapidocr", engine_workers=3, http_enabled=False).engine_workers == 3


# -- nothing downloads -----------------------------------------------------------------------------------


def test_offline_check_passes_without_a_network() -> None:
    """The Dockerfile's build-time check (deploy/check_offline.py) with the default engine and backend,
    in a network namespace with no interface but loopback (down), as ``RUN --network=none`` runs it."""
    script = Path(__file__).resolve().parents[2] / "deploy" / "check_offline.py"
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to make a network namespace")
    done = subprocess.run(
        [unshare, "--net", sys.executable, str(script)], capture_output=True, text=True, timeout=180, check=False
    )
    if done.returncode != 0 and "unshare failed" in done.stderr:
        pytest.skip(f"no network namespaces here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
