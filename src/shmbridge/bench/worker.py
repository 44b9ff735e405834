"""One benchmark client: a process (or thread) that runs slices of one cell when the coordinator says so.

By default every client is its own process with its own session, its own ``httpx.Client`` (one keep-alive
connection) and its own region: N clients are N client programs, as in the design's picture of
containers sharing one service, and no client's GIL can slow another. ``--clients threads`` runs the same
code as threads of one process instead (one application with a thread pool); docs/benchmarks.md compares
the two. The function below does not care which: it talks through anything with ``send``/``recv``/``poll``.

A slice: run one path at one size until ``slice_s`` has passed (at least ``min_iter`` and at most
``max_iter`` requests), timing each request with ``perf_counter`` and the client's CPU with
``process_time`` (processes) or ``thread_time`` (threads), and send back the latencies. Warm-up slices
also check, once, that the service read the very pixels that were sent (the null engine's checksum), so
a path that silently sends the wrong bytes cannot look fast.

Rules: the worker never decides what to run; it exits when told, when its pipe closes, or after
``IDLE_LIMIT`` without a command; it always closes its connections and removes its region file.
"""

from __future__ import annotations

import time
import traceback
from array import array
from collections.abc import Callable
from typing import Any

import numpy as np

from ..engines.null import checksum
from .iceoryx import IceoryxTarget
from .images import Size, frame
from .paths import NEEDS, PATH_FUNCTIONS, VERIFY_FUNCTIONS, BenchError, Endpoints
from .service import ServiceHandle

IDLE_LIMIT = 900.0  # seconds without a command: the coordinator is gone or stuck


def run_slice(
    ep: Endpoints,
    pixels: np.ndarray,
    path: str,
    size: Size,
    *,
    min_iter: int,
    max_iter: int,
    slice_s: float,
    verify: str | None,
    discard: int = 0,
    cpu_clock: Callable[[], float] = time.process_time,
) -> dict[str, Any]:
    """Run one slice; ``verify`` is the service's checksum mode when the answer must be checked first.

    The first ``discard`` requests re-warm a fast path after other cells ran (cold caches, an idle vCPU
    to wake): they are sent and their CPU is counted, but their latencies are not kept.
    """
    if verify is not None:
        outcome = VERIFY_FUNCTIONS[path](ep, size, pixels)
        expected = checksum(pixels, verify)  # type: ignore[arg-type]
        if outcome.checksum != expected:
            raise BenchError(f"{path} {size.label}: the service read other pixels (checksum {outcome.checksum}, "
                             f"expected {expected})")  # fmt: skip
    run = PATH_FUNCTIONS[path]
    latencies = array("d")
    engine_ms = array("d")
    copied = wire = 0
    clock = time.monotonic
    cpu0 = cpu_clock()
    for _ in range(discard):
        run(ep, size, pixels)
    started = clock()
    deadline = started + slice_s
    count = 0
    while count < max_iter:
        outcome = run(ep, size, pixels)
        latencies.append(outcome.latency)
        if outcome.engine_ms is not None:
            engine_ms.append(outcome.engine_ms)
        copied, wire = outcome.copied, outcome.wire
        count += 1
        if count >= min_iter and clock() >= deadline:
            break
    ended = clock()
    if "url" in NEEDS[path]:
        ep.mark_http_used()
    return {
        "latencies": latencies,
        "engine_ms": engine_ms,
        "copied": copied,
        "wire": wire,
        "cpu_s": cpu_clock() - cpu0,
        "discarded": discard,
        "start": started,
        "end": ended,
    }


def worker_main(
    conn: Any,
    index: int,
    target: ServiceHandle,
    iceoryx: IceoryxTarget | None,
    region_bytes: int,
    png_level: int,
    threaded: bool = False,
) -> None:
    """The client loop: answer ``("prepare", ...)`` and ``("slice", ...)`` until ``("close",)``.

    ``prepare`` does, untimed and before the coordinator reads the service's CPU, what a slice must not
    measure: drawing the frame, and replacing an HTTP connection the service may be about to drop.
    """
    ep = Endpoints(index, target, iceoryx, region_bytes, png_level)
    frames: dict[Size, np.ndarray] = {}
    clock = time.thread_time if threaded else time.process_time
    try:
        while conn.poll(IDLE_LIMIT):
            command = conn.recv()
            if command[0] not in ("prepare", "slice"):
                break
            _, path, size, options = command
            try:
                if size not in frames:
                    frames[size] = frame(size)
                if command[0] == "prepare":
                    if "url" in NEEDS[path]:
                        ep.refresh_http()
                    conn.send(("ok", None))
                else:
                    conn.send(("ok", run_slice(ep, frames[size], path, size, cpu_clock=clock, **options)))
            except Exception as exc:  # reported to the coordinator, which stops the run
                conn.send(("error", f"worker {index}, {path} {size.label}: {exc!r}\n{traceback.format_exc()}"))
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    finally:
        ep.close()
        conn.close()
