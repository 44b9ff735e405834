"""``python -m shmbridge.bench.engines``: how fast each available engine reads three synthetic screens.

For every engine it prints the median latency over a few runs and the process RSS for a 1920×1080
desktop, an 800×200 panel and a 300×60 button (``shmbridge.bench.synthetic``), plus how many of the true
lines it read exactly, so a fast but wrong engine shows. Each engine is measured in a child process of
its own, so one engine's memory never inflates another's RSS. Images are converted to the engine's
native format once, before timing, as the service would; the timings are the engine alone.

It never downloads anything and never writes files; it prints a table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..engines import ENGINES, create_engine
from ..engines.pixels import convert
from ..errors import EngineUnavailable
from ..models import OcrOptions, PixelFormat
from . import synthetic

IMAGES: dict[str, Callable[[], synthetic.Labelled]] = {
    "desktop 1920x1080": synthetic.desktop_1080p,
    "panel 800x200": synthetic.panel_800x200,
    "button 300x60": synthetic.button_300x60,
}
OCR_ENGINES = [name for name in ENGINES if name != "null"]


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB; current is the peak where /proc is absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mib = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
        return peak_mib, peak_mib


def measure(name: str, runs: int) -> dict[str, Any]:
    """Build, warm up and time one engine in this process."""
    baseline, _ = rss_mib()
    started = time.perf_counter()
    try:
        engine = create_engine(name)
        engine.warm_up()
    except EngineUnavailable as exc:
        return {"engine": name, "available": False, "reason": str(exc)}
    report: dict[str, Any] = {
        "engine": name,
        "available": True,
        "start_s": time.perf_counter() - started,
        "rss_baseline_mib": baseline,
        "rss_after_warm_up_mib": rss_mib()[0],
        "images": [],
    }
    options = OcrOptions()
    try:
        for label, make in IMAGES.items():
            rgb, truth = make()
            image, fmt, _ = convert(rgb, PixelFormat.RGB, engine.native_formats, engine.accepts_strides)
            timings: list[float] = []
            output = None
            for _ in range(runs):
                t0 = time.perf_counter()
                output = engine.recognize(image, fmt, options)
                timings.append(time.perf_counter() - t0)
            assert output is not None
            found = {" ".join(line.text.split()) for line in output.lines}
            exact = sum(1 for line in truth if " ".join(line.text.split()) in found)
            current, peak = rss_mib()
            report["images"].append(
                {
                    "image": label,
                    "runs": runs,
                    "median_ms": statistics.median(timings) * 1e3,
                    "min_ms": min(timings) * 1e3,
                    "lines": len(output.lines),
                    "truth_lines": len(truth),
                    "exact_lines": exact,
                    "rss_mib": current,
                    "peak_rss_mib": peak,
                }
            )
    finally:
        engine.close()
    return report


def measure_in_child(name: str, runs: int) -> dict[str, Any]:
    """Run ``measure`` in a fresh interpreter so RSS belongs to this engine alone."""
    command = [sys.executable, "-m", "shmbridge.bench.engines", "--child", name, "--runs", str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if done.returncode != 0:
        return {"engine": name, "available": False, "reason": f"child failed: {done.stderr.strip()[-500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def render(reports: Sequence[dict[str, Any]]) -> str:
    """The reports as a plain-text table."""
    header = (
        f"{'engine':<10} {'image':<18} {'median ms':>10} {'min ms':>9} {'runs':>4} {'exact':>7} "
        f"{'RSS MiB':>8} {'peak':>7}"
    )
    rows = [header, "-" * len(header)]
    for report in reports:
        if not report["available"]:
            rows.append(f"{report['engine']:<10} unavailable: {report['reason']}")
            continue
        rows.append(
            f"{report['engine']:<10} {'start + warm-up':<18} {report['start_s'] * 1e3:>10.0f} {'':>9} {'':>4} "
            f"{'':>7} {report['rss_after_warm_up_mib']:>8.0f} {'':>7}"
        )
        for item in report["images"]:
            exact = f"{item['exact_lines']}/{item['truth_lines']}"
            rows.append(
                f"{'':<10} {item['image']:<18} {item['median_ms']:>10.1f} {item['min_ms']:>9.1f} "
                f"{item['runs']:>4} {exact:>7} {item['rss_mib']:>8.0f} {item['peak_rss_mib']:>7.0f}"
            )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench.engines", description=__doc__.split("\n")[0])
    parser.add_argument("--engine", action="append", choices=OCR_ENGINES, help="measure only these (repeatable)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--child", choices=OCR_ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not synthetic.fonts_available():
        parser.error(f"the DejaVu fonts are missing in {synthetic.FONT_DIR}: apt-get install {synthetic.FONT_PACKAGE}")
    if args.child:
        print(json.dumps(measure(args.child, args.runs)))
        return 0
    reports = [measure_in_child(name, args.runs) for name in args.engine or OCR_ENGINES]
    print(json.dumps(reports, indent=2) if args.json else render(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
