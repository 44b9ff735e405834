"""``python -m shmbridge.bench.engines``: OCR configurations on real screens, through the service.

Each configuration (an engine, its options, a worker count and a recognition level) gets a service of
its own (``shmbridge serve`` in a subprocess) and is driven over shared-memory sessions with the pages
of a screens folder (``../shared/fixtures/screens`` by default, or ``--screens DIR``). All services are
up at once and the timed phases take turns, configuration by configuration, round by round, so a
machine that gets busier during the run slows every row alike. ``today`` (the configuration shipped
before the two-resolution pipeline) is the reference row; the report gives every row's ratio to it.

Per configuration it prints p50 and p95 latency (as the client saw it), the service's per-stage split
(medians), CPU seconds the service spent per page (far less disturbed by other load than wall time),
recall, precision and CER from the folder's own ``score.py`` (aggregated over the pages), a 300×60 crop's
p50, throughput with ``--clients`` clients at once in frames per second, and the service's RSS after
warm-up and at its peak. It prints the exact command first. It never downloads and never writes files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..client import Client
from ..engines import default_workers
from . import synthetic
from .screens import Page, default_screens_dir, load_pages, load_scorer, scored_lines
from .service import ServiceHandle, own_service


@dataclass(frozen=True)
class Setup:
    """One configuration: what the service runs and what each request asks for."""

    engine: str = "rapidocr"
    options: dict[str, Any] = field(default_factory=dict)
    #: Engine instances (0: the service's default for the engine).
    workers: int = 0
    level: str = "accurate"
    about: str = ""


#: The reference: RapidOCR as shipped before (full-size detection on onnxruntime, onnxruntime's own
#: thread count in each of two workers, RapidOCR's own recognition batches: 6 lines in order of shape,
#: never narrower than 320/48 of their height, no room added around a line).
REFERENCE = "today"
RAPIDOCR_BATCHES = {"rec_batch": 6, "batch_tolerance": 1e9, "batch_floor": 320 / 48, "batch_invariant": False,
                    "line_margin": 1.0}  # fmt: skip
SETUPS: dict[str, Setup] = {
    REFERENCE: Setup(
        options={"backend": "onnxruntime", "detect_side": 2000, "intra_op_threads": 0, **RAPIDOCR_BATCHES},
        workers=2,
        about="reference: full-size detection, onnxruntime, default threads",
    ),
    "accurate": Setup(about="the default: onnxruntime, full-size detection, one worker per two CPUs"),
    "fast": Setup(level="fast", about="recognition_level=fast on the default (detection at 1280 px, lines at 40 px)"),
    "accurate-ov": Setup(options={"backend": "openvino"}, about="the default on OpenVINO"),
    "accurate-2x1": Setup(workers=2, about="the default with two workers of one thread each (the previous split)"),
    "accurate-rapidocr-batches": Setup(options=RAPIDOCR_BATCHES, about="the default with RapidOCR's own batching"),
    "fast-48": Setup(level="fast", options={"fast_line_height": 48}, about="fast, lines read at the model's 48 px"),
    "detect-1280": Setup(options={"detect_side": 1280}, about="the default detecting at 1280 px"),
    "detect-1088": Setup(options={"detect_side": 1088}, about="the default detecting at 1088 px"),
    "detect-960": Setup(options={"detect_side": 960}, about="the default detecting at 960 px"),
    "tesseract": Setup(engine="tesseract", about="tesseract (optional extra)"),
}
DEFAULT_SETUPS = [REFERENCE, "accurate", "fast", "accurate-ov", "accurate-2x1", "detect-1280"]


def proc_status(pid: int) -> dict[str, float]:
    """RSS now and at its peak (MiB) and CPU seconds so far, of a running process, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        ticks = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024, "peak_mib": int(fields["VmHWM"].split()[0]) / 1024,
            "cpu_s": cpu}  # fmt: skip


@dataclass
class Row:
    """What one configuration measured."""

    name: str
    setup: Setup
    handle: ServiceHandle
    client: Client
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    stages: dict[str, list[float]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    crop_latencies: list[float] = field(default_factory=list)
    throughput_fps: float = 0.0
    rss_after_warm_up_mib: float = 0.0

    def read(self, image: np.ndarray) -> Any:
        return self.client.ocr(image, recognition_level=self.setup.level)


def timed_pages(row: Row, pages: Sequence[Page], scorer: Any) -> None:
    """One pass over the pages: latency, stage times and the service's CPU time; scores on the first pass."""
    pid = row.handle.pid
    assert pid is not None
    before = proc_status(pid)["cpu_s"]
    for page in pages:
        result = row.read(page.rgb)
        row.latencies.append(result.total_time_ms / 1e3)
        for stage, value in result.timings.model_dump().items():
            row.stages.setdefault(stage.removesuffix("_ms"), []).append(value / 1e3)
        if page.name not in row.scores:
            row.scores[page.name] = scorer.score(page.truth, scored_lines(result.lines))
    row.cpu_s += proc_status(pid)["cpu_s"] - before


def throughput(row: Row, pages: Sequence[Page], clients: int) -> float:
    """Frames per second with ``clients`` clients sending every page once each, all at once."""
    assert row.handle.socket_path is not None
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            with Client(socket=row.handle.socket_path, mode="shm", timeout=1200) as client:
                client.open()
                barrier.wait(timeout=120)
                for index in range(len(pages)):
                    client.ocr(pages[(index + offset) % len(pages)].rgb, recognition_level=row.setup.level)
        except BaseException as exc:  # reported below, after every thread is joined
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=120)
    started = time.perf_counter()
    for thread in threads:
        thread.join(timeout=1800)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{row.name}: a throughput client failed: {errors[0]!r}") from errors[0]
    return clients * len(pages) / elapsed


def crop_image() -> np.ndarray:
    """A 300×60 button (drawn), or a 300×60 cut of a blank-ish page corner when fonts are missing."""
    if synthetic.fonts_available():
        return synthetic.button_300x60()[0]
    return np.full((60, 300, 3), 255, np.uint8)


def run(names: Sequence[str], pages: Sequence[Page], scorer: Any, rounds: int, clients: int,
        crop_runs: int) -> list[dict[str, Any]]:  # fmt: skip
    """Start every configuration's service, take turns through the phases, and summarise each row."""
    crop = crop_image()
    with ExitStack() as stack:
        rows: list[Row] = []
        for name in names:
            setup = SETUPS[name]
            extra = [arg for key, value in setup.options.items() for arg in ("--engine-option", _option(key, value))]
            extra += ["--engine-timeout", "600", "--request-timeout", "1200"]  # a busy machine is slow, not broken
            handle = stack.enter_context(own_service(setup.engine, http=False, workers=setup.workers, extra=extra))
            client = stack.enter_context(Client(socket=handle.socket_path, mode="shm", timeout=1200))
            row = Row(name, setup, handle, client)
            row.read(pages[0].rgb)  # the first frame of a size pays for allocations: not timed
            assert handle.pid is not None
            row.rss_after_warm_up_mib = proc_status(handle.pid)["rss_mib"]
            rows.append(row)
        for _ in range(rounds):
            for row in rows:
                timed_pages(row, pages, scorer)
        for row in rows:
            for _ in range(crop_runs):
                row.crop_latencies.append(row.read(crop).total_time_ms / 1e3)
        for row in rows:
            row.throughput_fps = throughput(row, pages, clients)
        return [summary(row, scorer, len(pages) * rounds) for row in rows]


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(row: Row, scorer: Any, frames: int) -> dict[str, Any]:
    assert row.handle.pid is not None
    status = proc_status(row.handle.pid)
    accuracy = scorer.aggregate(list(row.scores.values()))
    return {
        "config": row.name,
        "about": row.setup.about,
        "engine": row.setup.engine,
        "options": row.setup.options,
        "workers": row.setup.workers or default_workers(row.setup.engine),
        "level": row.setup.level,
        "frames": frames,
        "p50_s": statistics.median(row.latencies),
        "p95_s": _quantile(row.latencies, 0.95),
        "cpu_s_per_frame": row.cpu_s / frames,
        "stages_p50_ms": {stage: statistics.median(values) * 1e3 for stage, values in row.stages.items()},
        "recall": accuracy["recall"],
        "precision": accuracy["precision"],
        "cer": accuracy["cer"],
        "crop_p50_ms": statistics.median(row.crop_latencies) * 1e3 if row.crop_latencies else None,
        "throughput_fps": row.throughput_fps,
        "rss_after_warm_up_mib": row.rss_after_warm_up_mib,
        "peak_rss_mib": status["peak_mib"],
    }


def render(reports: Sequence[dict[str, Any]]) -> str:
    reference = next((r for r in reports if r["config"] == REFERENCE), None)
    header = (f"{'config':<13} {'p50 s':>6} {'p95 s':>6} {'x ref':>6} {'cpu s':>6} {'x ref':>6} {'recall':>7} "
              f"{'prec':>6} {'CER %':>6} {'crop ms':>8} {'fps':>5} {'x ref':>6} {'RSS':>6} {'peak':>6}")  # fmt: skip
    lines = [header, "-" * len(header)]
    for r in reports:

        def ratio(key: str, inverse: bool = False, r: dict[str, Any] = r) -> str:
            if reference is None or not r[key]:
                return ""
            return f"{(r[key] / reference[key]) if inverse else (reference[key] / r[key]):.2f}"

        lines.append(
            f"{r['config']:<13} {r['p50_s']:>6.2f} {r['p95_s']:>6.2f} {ratio('p50_s'):>6} {r['cpu_s_per_frame']:>6.2f} "
            f"{ratio('cpu_s_per_frame'):>6} {r['recall']:>7.4f} {r['precision']:>6.4f} {100 * r['cer']:>6.2f} "
            f"{r['crop_p50_ms']:>8.1f} {r['throughput_fps']:>5.2f} {ratio('throughput_fps', inverse=True):>6} "
            f"{r['rss_after_warm_up_mib']:>6.0f} {r['peak_rss_mib']:>6.0f}"
        )
    lines += ["", "stage medians, ms (client latency p50 in s above):"]
    stage_names = ["decode", "convert", "queue", "detect", "recognize", "postprocess", "engine", "total"]
    lines.append(f"{'config':<13} " + " ".join(f"{name:>11}" for name in stage_names))
    for r in reports:
        lines.append(f"{r['config']:<13} " + " ".join(f"{r['stages_p50_ms'].get(n, 0.0):>11.1f}" for n in stage_names))
    lines += ["", "x ref: how many times faster (latency, CPU) or more (fps) than the reference row, same run."]
    lines += [f"{r['config']}: {r['about']}" for r in reports]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m shmbridge.bench.engines", description=__doc__.split("\n")[0])
    p.add_argument("--config", action="append", choices=sorted(SETUPS), help=f"configurations (default: "
                   f"{' '.join(DEFAULT_SETUPS)}); the reference row is always added")  # fmt: skip
    p.add_argument("--screens", type=Path, default=None, help="screens folder (default ../shared/fixtures/screens)")
    p.add_argument("--pages", help="comma-separated page names (default: every 1920x1080 single frame)")
    p.add_argument("--rounds", type=int, default=2, help="timed passes over the pages per configuration (default 2)")
    p.add_argument("--clients", type=int, default=4, help="clients at once in the throughput phase (default 4)")
    p.add_argument("--crop-runs", type=int, default=10, help="timed runs of the 300x60 crop (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.rounds < 1 or args.clients < 1 or args.crop_runs < 1:
        parser().error("--rounds, --clients and --crop-runs must be at least 1")
    folder = args.screens or default_screens_dir()
    if not (folder / "manifest.json").is_file():
        parser().error(f"no screens folder at {folder} (it needs manifest.json, NAME.png + NAME.json, score.py)")
    names = list(dict.fromkeys([REFERENCE, *(args.config or DEFAULT_SETUPS)]))
    pages = load_pages(folder, args.pages.split(",") if args.pages else None)
    if not pages:
        parser().error(f"no pages selected in {folder}")
    command = shlex.join([Path(sys.executable).name, "-m", "shmbridge.bench.engines", *(argv or sys.argv[1:])])
    print(f"# {command}\n# {len(pages)} pages from {folder}: {', '.join(p.name for p in pages)}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start", flush=True)  # fmt: skip
    reports = run(names, pages, load_scorer(folder), args.rounds, args.clients, args.crop_runs)
    print(json.dumps(reports, indent=2) if args.json else render(reports))
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    return 0


def _option(key: str, value: object) -> str:
    """``KEY=VALUE`` for ``--engine-option``, the value as JSON (``false``, not Python's ``False``)."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


if __name__ == "__main__":
    sys.exit(main())
