"""``shmbridge bench``: flags, progress bar and outputs. The measuring is in ``suite``/``runner``/``worker``.

This module imports only the standard library at the top, so ``shmbridge serve`` (which shares the
parser) does not pay for numpy, httpx or rich at start-up. ``python -m shmbridge.bench`` runs it too.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
Without --url/--socket it starts its own services: the null engine (sampled checksum) for the transport
matrix, then rapidocr for the engine pass. --quick keeps every path and size but drops 16 clients, takes
at most 60 samples or 0.25 s per cell and runs the engine pass at 300x60 only (about a minute on 2 cores).
See docs/benchmarks.md for what each path times."""


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench flags, on ``parser`` (the ``bench`` subparser of ``shmbridge``, or a parser of its own)."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--quick", action="store_true", help="reduced matrix, about a minute on 2 cores")
    target = parser.add_argument_group("target (default: start private services)")
    target.add_argument("--url", help="HTTP base URL of a running service, e.g. http://127.0.0.1:8080")
    target.add_argument("--socket", help="Unix socket of the running service (session paths)")
    target.add_argument("--region-dir", help="the running service's --region-dir (shm-region path)")
    target.add_argument("--low-latency", action="store_true", help="start the own services with --low-latency "
                        "(idle CPUs poll while sessions are busy; needs /dev/cpu_dma_latency)")  # fmt: skip
    matrix = parser.add_argument_group("matrix")
    matrix.add_argument("--sizes", type=_csv, help="WIDTHxHEIGHT list, default 300x60,1280x720,1920x1080,3840x2160")
    matrix.add_argument("--concurrency", type=_csv, help="client counts, default 1,4,16 (quick: 1,4)")
    matrix.add_argument("--paths", type=_csv, help="subset of legacy-json,http-png,http-raw,shm-region,shm-copy,"
                        "shm-frame,iceoryx2")  # fmt: skip
    matrix.add_argument("--samples", type=int, help="samples per cell to aim for (default 2000; quick 60)")
    matrix.add_argument("--cell-time", type=float, help="seconds of measurement per cell at most, once it has "
                        "5 samples (default 4; quick 0.25)")  # fmt: skip
    matrix.add_argument("--slice-time", type=float, help="seconds per interleaved slice (default 0.25)")
    matrix.add_argument("--clients", choices=("processes", "threads"), default="processes",
                        help="each client its own process (default) or a thread of one process")  # fmt: skip
    matrix.add_argument("--png-level", type=int, choices=range(10), metavar="0-9",
                        help="PNG compress_level of legacy-json and http-png (default 6 = Pillow's)")  # fmt: skip
    engine = parser.add_argument_group("engine pass")
    engine.add_argument("--no-engine-pass", action="store_true", help="skip the real-engine pass")
    engine.add_argument("--engine-sizes", type=_csv, help="default 1920x1080,300x60 (quick: 300x60)")
    engine.add_argument("--engine-samples", type=int, help="samples per engine cell (default 10; quick 5)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write the machine-readable report here")
    out.add_argument("--markdown", type=Path, help="write the tables as Markdown here")
    out.add_argument("--plots", type=Path, help="write latency/throughput PNG plots into this directory")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--log-level", default="warning", help="logging level of the benchmark process (default warning)")


def build_settings(args: argparse.Namespace) -> Any:
    from .images import Size
    from .paths import PATHS
    from .settings import FULL, MIN_SAMPLES, QUICK, customise

    changes: dict[str, Any] = {}
    if args.sizes:
        changes["sizes"] = tuple(sorted(Size.parse(text) for text in args.sizes))
    if args.concurrency:
        counts = tuple(sorted({int(text) for text in args.concurrency}))
        if counts[0] < 1 or counts[-1] > 64:
            raise ValueError("clients must be between 1 and 64")
        changes["concurrency"] = counts
    if args.paths:
        unknown = sorted(set(args.paths) - set(PATHS))
        if unknown:
            raise ValueError(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
        changes["paths"] = tuple(path for path in PATHS if path in args.paths)
    if args.samples is not None:
        changes["transport_target_samples"] = max(MIN_SAMPLES, args.samples)
    if args.cell_time is not None:
        changes["transport_budget_s"] = max(0.0, args.cell_time)
    if args.slice_time is not None:
        changes["transport_slice_s"] = max(0.0, args.slice_time)
    if args.png_level is not None:
        changes["png_level"] = args.png_level
    changes["clients"] = args.clients
    changes["low_latency"] = args.low_latency
    if args.no_engine_pass:
        changes["engine_pass"] = False
    if args.engine_sizes:
        changes["engine_sizes"] = tuple(Size.parse(text) for text in args.engine_sizes)
    if args.engine_samples is not None:
        changes["engine_phase_target_samples"] = max(MIN_SAMPLES, args.engine_samples)
    return customise(QUICK if args.quick else FULL, **changes)


def _command() -> str:
    argv = sys.argv
    if "bench" in argv[1:]:
        return "shmbridge " + shlex.join(argv[argv.index("bench", 1) :])
    return "python -m shmbridge.bench " + shlex.join(argv[1:])


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the flags describe; 0 on success, 2 on bad flags, 1 if the run failed."""
    from rich.console import Console

    from . import plots, report, suite
    from .paths import BenchError

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # a log file or a pipe: keep each row on one line
    try:
        settings = build_settings(args)
    except ValueError as exc:
        console.print(f"shmbridge bench: {exc}", style="red")
        return 2
    if args.plots and (reason := plots.available()):
        console.print(f"shmbridge bench: --plots: {reason}", style="red")
        return 2
    if args.low_latency and (args.url or args.socket):
        console.print(
            "shmbridge bench: --low-latency applies to the services it starts itself; start the running "
            "service with --low-latency instead (the report says whether it has the mode on)",
            style="red",
        )
        return 2
    if args.socket and not args.url:
        console.print("shmbridge bench: --socket without --url measures the session paths only", style="yellow")
    with _progress(console, disabled=args.no_progress) as (announce, progress):
        try:
            result = suite.run(settings, url=args.url, socket_path=args.socket, region_dir=args.region_dir,
                               announce=announce, progress=progress)  # fmt: skip
        except (BenchError, RuntimeError, OSError) as exc:
            console.print(f"shmbridge bench: the run failed: {exc}", style="red", markup=False, highlight=False)
            return 1
    result["command"] = _command()
    report.print_tables(result, console)
    written = plots.write_plots(result, args.plots) if args.plots else []
    if args.json:
        report.write_json(result, args.json)
    if args.markdown:
        report.write_markdown(result, args.markdown, written)
    for path in [args.json, args.markdown, *written]:
        if path:
            console.print(f"wrote {path}")
    return 0


class _progress:
    """A rich progress bar over cells; ``announce`` adds a phase's cells, ``progress`` moves it."""

    def __init__(self, console: Any, disabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, disable=disabled, transient=False)  # fmt: skip
        self.task = self.bar.add_task("starting services", total=0)
        self.total = 0

    def announce(self, cells: list[Any], phase: str) -> None:
        self.total += len(cells)
        self.bar.update(self.task, total=self.total, description=f"{phase}: {len(cells)} cells")

    def progress(self, cell: Any, done: bool) -> None:
        self.bar.update(self.task, advance=1 if done else 0, description=cell.label)

    def __enter__(self) -> tuple[Any, Any]:
        self.bar.__enter__()
        return self.announce, self.progress

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench", description="Measure every transport.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
