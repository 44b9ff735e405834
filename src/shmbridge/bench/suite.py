"""One benchmark run, start to end: services, the iceoryx2 helper, client processes, both phases, the report.

Phase 1 (transport): every selected path × size × clients against the null engine (or the service named
with ``--url``/``--socket``), interleaved. Phase 2 (engine): the default OCR engine in a service of its
own, started after phase 1's service has stopped so the two never compete for the CPU; it shows what
share of a real request the bridge is.

The report is a plain dict (JSON-ready): run metadata, machine, libraries, settings, what was skipped and
why, one row per cell, and the headline ratios. Rules: everything started here is stopped here, on
errors too; a path that cannot run is skipped with its reason, never silently.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from . import machine
from .iceoryx import IceoryxTarget, iceoryx_helper, unavailable_reason
from .images import content_kind
from .paths import NEEDS
from .probes import CopyCounter, ProcessCpu
from .runner import PhaseContext, make_cells, run_phase, worker_pool
from .service import ServiceHandle, external_service, own_service
from .settings import Settings
from .stats import Cell, add_speedups, headline

GiB = 1 << 30
#: Our own service: two slots per segment (each client uses two per size) and room for 16 clients' regions.
OWN_SERVICE_ENV = {"SHMBRIDGE_SLOTS_PER_SEGMENT": "2", "SHMBRIDGE_MAX_REGION_BYTES": str(2 * GiB)}

Progress = Callable[[Cell, bool], None]
Announce = Callable[[list[Cell], str], None]


def _runnable(paths: tuple[str, ...], handle: ServiceHandle, skipped: list[dict[str, str]]) -> tuple[str, ...]:
    """The paths this target supports; the others go to ``skipped`` with the reason."""
    have = {"url": handle.url, "socket_path": handle.socket_path, "region_dir": handle.region_dir, "iceoryx": True}
    reason_iceoryx = unavailable_reason()
    keep = []
    for path in paths:
        missing = [need for need in NEEDS[path] if not have[need]]
        if path == "iceoryx2" and reason_iceoryx:
            skipped.append({"path": path, "reason": reason_iceoryx})
        elif missing:
            flags = {"url": "--url", "socket_path": "--socket", "region_dir": "--region-dir"}
            skipped.append({"path": path, "reason": f"the target has no {', '.join(flags[m] for m in missing)}"})
        else:
            keep.append(path)
    return tuple(keep)


def run(
    settings: Settings,
    *,
    url: str | None = None,
    socket_path: str | None = None,
    region_dir: str | None = None,
    announce: Announce = lambda cells, phase: None,
    progress: Progress = lambda cell, done: None,
) -> dict[str, Any]:
    """Run both phases and return the report. ``url``/``socket_path`` name a running service to measure."""
    started = time.monotonic()
    report: dict[str, Any] = {
        "schema_version": 1,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "libraries": machine.libraries(),
        "settings": {**settings.info(), "content": content_kind()},
        "skipped": [],
        "services": {},
    }
    deadline = started + settings.max_total_s
    cells = _transport_phase(settings, url, socket_path, region_dir, report, deadline, announce, progress)
    if settings.engine_pass:
        cells += _engine_phase(settings, report, deadline, announce, progress)
    else:
        report["skipped"].append({"path": "engine pass", "reason": "turned off (--no-engine-pass)"})
    rows = [cell.summary() for cell in cells if cell.latencies]
    add_speedups(rows)
    report["cells"] = rows
    report["headline"] = headline(rows)
    report["load_average_after"] = machine.load_average()
    report["duration_s"] = time.monotonic() - started
    return report


def _transport_phase(
    settings: Settings,
    url: str | None,
    socket_path: str | None,
    region_dir: str | None,
    report: dict[str, Any],
    deadline: float,
    announce: Announce,
    progress: Progress,
) -> list[Cell]:
    with contextlib.ExitStack() as stack:
        if url or socket_path:
            handle = external_service(url, socket_path, region_dir)
        else:
            handle = stack.enter_context(own_service("null", env=OWN_SERVICE_ENV, extra=_service_flags(settings)))
        paths = _runnable(settings.paths, handle, report["skipped"])
        largest = max(size.nbytes for size in settings.sizes)
        iceoryx: IceoryxTarget | None = None
        helper_cpu = None
        if "iceoryx2" in paths:
            iceoryx, helper_pid = stack.enter_context(iceoryx_helper(largest))
            helper_cpu = ProcessCpu(helper_pid)
        cells = make_cells(handle.engine, paths, settings.sizes, settings.concurrency, "transport")
        announce(cells, f"transport ({handle.engine} engine)")
        threads = settings.clients == "threads"
        pool = stack.enter_context(
            worker_pool(max(settings.concurrency), handle, iceoryx, largest, settings.png_level, threads)
        )
        service_cpu = ProcessCpu(handle.pid)
        copies = stack.enter_context(contextlib.closing(CopyCounter(handle.url)))
        ctx = PhaseContext(pool, service_cpu, copies, helper_cpu, handle.checksum_mode, deadline)
        run_phase(cells, settings.transport, ctx, progress)
        report["services"]["transport"] = {
            **handle.info(),
            "cpu_totals": service_cpu.totals(),
            "iceoryx_helper_cpu_totals": helper_cpu.totals() if helper_cpu else None,
            "client_pids": pool.pids,
        }
    return cells


def _service_flags(settings: Settings) -> list[str]:
    """Flags the run's settings add to the own services' command line."""
    return ["--low-latency"] if settings.low_latency else []


def _engine_phase(
    settings: Settings, report: dict[str, Any], deadline: float, announce: Announce, progress: Progress
) -> list[Cell]:
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(
                own_service(settings.engine_name, env=OWN_SERVICE_ENV, extra=_service_flags(settings))
            )
        except RuntimeError as exc:
            report["skipped"].append({"path": "engine pass", "reason": f"{settings.engine_name} did not start: {exc}"})
            return []
        paths = _runnable(settings.engine_paths, handle, report["skipped"])
        cells = make_cells(handle.engine, paths, settings.engine_sizes, (1,), "engine")
        announce(cells, f"engine ({handle.engine})")
        largest = max(size.nbytes for size in settings.engine_sizes)
        threads = settings.clients == "threads"
        pool = stack.enter_context(worker_pool(1, handle, None, largest, settings.png_level, threads))
        service_cpu = ProcessCpu(handle.pid)
        copies = stack.enter_context(contextlib.closing(CopyCounter(handle.url)))
        ctx = PhaseContext(pool, service_cpu, copies, None, None, deadline)
        run_phase(cells, settings.engine, ctx, progress)
        report["services"]["engine"] = {**handle.info(), "cpu_totals": service_cpu.totals()}
    return cells
