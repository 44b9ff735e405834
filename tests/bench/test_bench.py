"""The benchmark suite end to end: a reduced ``shmbridge bench --quick`` against its own services.

One run covers every path and every size (fewer samples, 1 and 2 clients, the engine pass at 300×60) and
writes JSON, Markdown and plots; the JSON is then checked against an explicit schema written here, not
against the code that produced it. No timing is asserted: only that every measurement exists, has the
right type and is positive (bytes copied and wire bytes may be zero: that is what zero-copy means).
The run must leave no process, temp dir or ``/dev/shm`` file behind.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from shmbridge.bench.iceoryx import unavailable_reason
from shmbridge.bench.images import SIZES, Size
from shmbridge.bench.paths import ENGINE_PATHS, PATHS
from shmbridge.bench.stats import percentile

RUN_TIMEOUT = 240

#: Values that are legitimately zero: copies a zero-copy path never makes, pixels it never sends, the
#: bridge's share when the engine's own figure already covers the request, re-warm-ups slow cells skip.
MAY_BE_ZERO = {
    "client_bytes_copied_per_req",
    "service_bytes_copied_per_req",
    "bytes_copied_per_req",
    "wire_bytes_per_req",
    "bridge_p50_ms",
    "discarded_per_slice",
}
NUMBER = (int, float)
CELL_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "engine": str,
    "path": str,
    "size": str,
    "width": int,
    "height": int,
    "frame_bytes": int,
    "concurrency": int,
    "phase": str,
    "samples": int,
    "slices": int,
    "truncated": bool,
    "p50_ms": NUMBER,
    "p95_ms": NUMBER,
    "p99_ms": NUMBER,
    "mean_ms": NUMBER,
    "min_ms": NUMBER,
    "throughput_rps": NUMBER,
    "client_cpu_ms_per_req": NUMBER,
    "service_cpu_ms_per_req": NUMBER,
    "client_bytes_copied_per_req": NUMBER,
    "service_bytes_copied_per_req": NUMBER,
    "bytes_copied_per_req": NUMBER,
    "wire_bytes_per_req": NUMBER,
    "speedup_vs_legacy_json": NUMBER,
    "speedup_vs_http_raw": NUMBER,
}
ENGINE_CELL_SCHEMA = {**CELL_SCHEMA, "engine_p50_ms": NUMBER, "bridge_p50_ms": NUMBER, "bridge_share": NUMBER}
MACHINE_SCHEMA = {"cpu_model": str, "cpu_count": int, "cpu_usable": int, "memory_bytes": int, "kernel": str,
                  "os": str, "python": str}  # fmt: skip
REQUIRED_LIBRARIES = ("numpy", "pillow", "httpx", "fastapi", "uvicorn", "onnxruntime", "rapidocr", "iceoryx2")
TOP_SCHEMA = {"schema_version": int, "command": str, "started_at": str, "duration_s": NUMBER, "machine": dict,
              "libraries": dict, "settings": dict, "skipped": list, "services": dict, "cells": list,
              "headline": dict}  # fmt: skip


def _check_fields(where: str, data: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, kind in schema.items():
        assert key in data, f"{where}: missing {key}"
        value = data[key]
        assert isinstance(value, kind) and not (kind is NUMBER and isinstance(value, bool)), (
            f"{where}.{key}: {value!r} is not {kind}"
        )


def _check_positive(where: str, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, NUMBER):
            continue
        assert math.isfinite(value), f"{where}.{key} = {value}"
        if key in MAY_BE_ZERO:
            assert value >= 0, f"{where}.{key} = {value} is negative"
        else:
            assert value > 0, f"{where}.{key} = {value} is not positive"


def check_report(report: dict[str, Any], sizes: list[Size], iceoryx_expected: bool) -> None:
    """The explicit schema of ``--json`` plus the coverage this run asked for."""
    _check_fields("report", report, TOP_SCHEMA)
    assert report["schema_version"] == 1
    assert report["duration_s"] > 0
    _check_fields("machine", report["machine"], MACHINE_SCHEMA)
    _check_positive("machine", {k: report["machine"][k] for k in ("cpu_count", "cpu_usable", "memory_bytes")})
    for name in REQUIRED_LIBRARIES:
        assert name in report["libraries"], f"library {name} not reported"
    for name in ("numpy", "pillow", "httpx", "fastapi", "uvicorn"):
        assert isinstance(report["libraries"][name], str)
    for skip in report["skipped"]:
        _check_fields("skipped", skip, {"path": str, "reason": str})
    transport = [cell for cell in report["cells"] if cell["phase"] == "transport"]
    engine = [cell for cell in report["cells"] if cell["phase"] == "engine"]
    for index, cell in enumerate(transport):
        where = f"cells[{index}] {cell.get('path')} {cell.get('size')} x{cell.get('concurrency')}"
        _check_fields(where, cell, CELL_SCHEMA)
        _check_positive(where, cell)
        assert cell["samples"] >= 5
        assert cell["p50_ms"] <= cell["p95_ms"] <= cell["p99_ms"]
    for cell in engine:
        _check_fields(f"engine {cell['path']} {cell['size']}", cell, ENGINE_CELL_SCHEMA)
        _check_positive(f"engine {cell['path']} {cell['size']}", cell)
    paths = [p for p in PATHS if p != "iceoryx2" or iceoryx_expected]
    measured = {(c["path"], c["size"]) for c in transport if c["engine"] == "null" and c["concurrency"] == 1}
    missing = {(p, s.label) for p in paths for s in sizes} - measured
    assert not missing, f"paths/sizes not measured: {sorted(missing)}"
    assert {c["path"] for c in engine} == set(ENGINE_PATHS)
    if not iceoryx_expected:
        assert any(skip["path"] == "iceoryx2" for skip in report["skipped"]), "iceoryx2 skipped without a reason"
    for key, value in report["headline"].items():
        if key != "targets":
            assert isinstance(value, NUMBER) and value > 0, f"headline {key} = {value!r}"
    for name, service in report["services"].items():
        totals = service["cpu_totals"]
        assert totals["source"] in ("sched", "stat"), name
        _check_positive(f"services.{name}.cpu_totals", totals)


def _leftovers(tmp: Path) -> set[str]:
    """What a benchmark leaves behind: its temporary folders (in ``tmp``, the run's own ``TMPDIR``, so
    another process's benchmark on the same machine cannot count) and its /dev/shm names."""
    found = set(glob.glob(str(tmp / "shmb-bench-*")) + glob.glob(str(tmp / "shmb-iox-*")))
    return found | set(glob.glob("/dev/shm/shmb-bench-*")) | set(glob.glob("/dev/shm/shmbb*"))


def test_quick_bench_covers_every_path_and_size(tmp_path: Path) -> None:
    # The run's own TMPDIR, short (iceoryx2 puts socket paths in it, which must fit in 108 bytes).
    own_tmp = Path(tempfile.mkdtemp(prefix="sbt-"))
    try:
        _quick_bench_leaves_nothing(tmp_path, own_tmp)
    finally:
        shutil.rmtree(own_tmp, ignore_errors=True)


def _quick_bench_leaves_nothing(tmp_path: Path, own_tmp: Path) -> None:
    before = _leftovers(own_tmp)
    out = tmp_path / "out.json"
    args = [sys.executable, "-m", "shmbridge.cli", "bench", "--quick", "--no-progress",
            "--concurrency", "1,2", "--samples", "20", "--cell-time", "0.1", "--slice-time", "0.05",
            "--json", str(out), "--markdown", str(tmp_path / "out.md"), "--plots", str(tmp_path / "plots")]  # fmt: skip
    run = subprocess.run(args, capture_output=True, text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL,
                         env={**os.environ, "TMPDIR": str(own_tmp)})  # fmt: skip
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
    report = json.loads(out.read_text())
    check_report(report, SIZES, iceoryx_expected=unavailable_reason() is None)
    assert report["command"].startswith("shmbridge bench --quick")
    markdown = (tmp_path / "out.md").read_text()
    for path in PATHS:
        assert path in markdown
    plots = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in plots] == ["latency_vs_size.png", "throughput_vs_concurrency.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    assert _leftovers(own_tmp) <= before, f"left behind: {sorted(_leftovers(own_tmp) - before)}"


def test_threaded_clients_run_the_same_cells(tmp_path: Path) -> None:
    """``--clients threads``: the same worker code as threads of one process, same report shape."""
    out = tmp_path / "threads.json"
    args = [sys.executable, "-m", "shmbridge.cli", "bench", "--quick", "--no-progress", "--no-engine-pass",
            "--clients", "threads", "--paths", "http-raw,shm-frame", "--sizes", "300x60", "--concurrency", "1,2",
            "--samples", "10", "--cell-time", "0.05", "--json", str(out)]  # fmt: skip
    run = subprocess.run(args, capture_output=True, text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
    report = json.loads(out.read_text())
    assert report["settings"]["client_model"] == "threads"
    cells = {(c["path"], c["concurrency"]) for c in report["cells"]}
    assert cells == {("http-raw", 1), ("http-raw", 2), ("shm-frame", 1), ("shm-frame", 2)}
    schema = {k: v for k, v in CELL_SCHEMA.items() if k != "speedup_vs_legacy_json"}  # legacy-json not run
    for cell in report["cells"]:
        assert cell["speedup_vs_legacy_json"] is None
        _check_fields(cell["path"], cell, schema)
        _check_positive(cell["path"], cell)


def test_schema_check_rejects_a_zero_latency() -> None:
    """The schema check itself catches what it is meant to catch."""
    cell = {key: 1.0 for key, kind in CELL_SCHEMA.items() if kind is NUMBER}
    cell["p50_ms"] = 0.0
    with pytest.raises(AssertionError, match="p50_ms"):
        _check_positive("cell", cell)
    cell["p50_ms"], cell["wire_bytes_per_req"] = 1.0, 0
    _check_positive("cell", cell)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_sizes_parse_and_order() -> None:
    assert Size.parse("1920x1080") == Size.of(1920, 1080)
    assert Size.parse("300×60").label == "300x60"
    assert sorted([Size.of(3840, 2160), Size.of(300, 60)])[0] == Size.of(300, 60)
    with pytest.raises(ValueError):
        Size.parse("1920")


def test_low_latency_applies_only_to_the_services_it_starts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shmbridge.cli", "bench", "--url", "http://127.0.0.1:1", "--low-latency"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--low-latency applies to the services it starts itself" in done.stdout + done.stderr
