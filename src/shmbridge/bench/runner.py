"""The coordinator: client processes (or threads), and the round-robin that interleaves every cell of a phase.

Interleaving: a phase is a list of cells. Each round visits every unfinished cell once and runs one slice
of it (all of its clients at once, nothing else running), so a change in the machine's speed over the run
(another job, thermal limits, page cache) lands on every path alike instead of on whichever ran last. A
cell's first slice is its warm-up (connections, slots, region mapping, first page faults, and one check
that the service read the pixels that were sent) and is not counted. A cell ends when it has its target
number of samples, or when its measurement budget is used up and it has at least the minimum; the phase
ends when every cell has, after ``MAX_ROUNDS`` rounds, or at the run's deadline (cells then left are
marked truncated).

Around each slice the coordinator reads the service's CPU (``probes.ProcessCpu``) and, after it, its
copy counter (``probes.CopyCounter``); it measures nothing else and does no I/O while a slice runs.

Rules: every process started here is stopped here (``WorkerPool.close``, also on errors); every wait on
a worker is bounded.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .iceoryx import IceoryxTarget
from .images import Size
from .paths import MODES, REQUEST_TIMEOUT, BenchError
from .probes import CopyCounter, ProcessCpu
from .service import ServiceHandle
from .settings import Phase
from .stats import Cell
from .worker import worker_main

MAX_ROUNDS = 100_000
START_TIMEOUT = 60.0
#: A cell whose warm-up median is under FAST_CELL_S drops its first SLICE_WARMUP requests of every slice:
#: after other cells ran, the first requests of a 150 µs path take 2 to 3 times as long (cold caches, an
#: idle vCPU to wake). Slower cells keep every request: their first one costs them under 1 % extra.
FAST_CELL_S = 0.002
SLICE_WARMUP = 3


class QueueConnection:
    """One end of a pair of queues with the ``send``/``recv``/``poll`` of a pipe: threaded clients use it."""

    def __init__(self, inbox: queue.Queue[Any], outbox: queue.Queue[Any]) -> None:
        self._inbox, self._outbox, self._held = inbox, outbox, deque[Any]()

    def send(self, item: Any) -> None:
        self._outbox.put(item)

    def poll(self, timeout: float = 0.0) -> bool:
        if not self._held:
            try:
                self._held.append(self._inbox.get(timeout=timeout))
            except queue.Empty:
                return False
        return True

    def recv(self) -> Any:
        return self._held.popleft() if self._held else self._inbox.get()

    def close(self) -> None:
        """Nothing to release; present so both kinds of connection close alike."""


class WorkerPool:
    """``count`` clients: spawned processes (none inherits the coordinator's threads or sockets), or threads."""

    def __init__(
        self,
        count: int,
        target: ServiceHandle,
        iceoryx: IceoryxTarget | None,
        region_bytes: int,
        png_level: int,
        threads: bool = False,
    ) -> None:
        self.threads = threads
        context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[Any, Any]] = []
        try:
            for index in range(count):
                name = f"shmbridge-bench-client-{index}"
                if threads:
                    to_worker: queue.Queue[Any] = queue.Queue()
                    to_pool: queue.Queue[Any] = queue.Queue()
                    parent: Any = QueueConnection(to_pool, to_worker)
                    child: Any = QueueConnection(to_worker, to_pool)
                    args = (child, index, target, iceoryx, region_bytes, png_level, True)
                    worker: Any = threading.Thread(target=worker_main, args=args, name=name, daemon=True)
                else:
                    parent, child = context.Pipe()
                    args = (child, index, target, iceoryx, region_bytes, png_level)
                    worker = context.Process(target=worker_main, args=args, name=name, daemon=True)
                worker.start()
                if not threads:
                    child.close()
                self._workers.append((parent, worker))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [getattr(worker, "pid", None) or os.getpid() for _, worker in self._workers]

    def prepare(self, path: str, size: Size, concurrency: int) -> None:
        """Untimed set-up on the clients about to run a slice (see ``worker.worker_main``)."""
        self._command("prepare", path, size, concurrency, {}, START_TIMEOUT + REQUEST_TIMEOUT)

    def run(self, path: str, size: Size, concurrency: int, options: dict[str, Any]) -> list[dict[str, Any]]:
        """One slice on the first ``concurrency`` clients at once; their results, or ``BenchError``."""
        timeout = START_TIMEOUT + options["slice_s"] + REQUEST_TIMEOUT * max(1, options["min_iter"])
        return self._command("slice", path, size, concurrency, options, timeout)

    def _command(
        self, kind: str, path: str, size: Size, concurrency: int, options: dict[str, Any], timeout: float
    ) -> list[dict[str, Any]]:
        workers = self._workers[:concurrency]
        if len(workers) < concurrency:
            raise BenchError(f"{concurrency} clients asked for, {len(self._workers)} started")
        for conn, _ in workers:
            conn.send((kind, path, size, options))
        results, errors = [], []
        for conn, process in workers:
            if not conn.poll(timeout):
                raise BenchError(f"client {process.name} did not finish a {path} slice within {timeout:.0f}s")
            try:
                status, payload = conn.recv()
            except EOFError:
                code = getattr(process, "exitcode", None)
                raise BenchError(f"client {process.name} died (exit code {code})") from None
            (results if status == "ok" else errors).append(payload)
        if errors:
            raise BenchError(errors[0])
        return results

    def close(self) -> None:
        """Tell every client to close (they remove their regions), then make sure each has exited."""
        for conn, _ in self._workers:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close",))
        for conn, process in self._workers:
            process.join(15)
            if process.is_alive() and not self.threads:
                process.terminate()
                process.join(5)
            if process.is_alive() and not self.threads:
                process.kill()
                process.join(5)
            conn.close()
        self._workers = []


@contextlib.contextmanager
def worker_pool(count: int, target: ServiceHandle, iceoryx: IceoryxTarget | None, region_bytes: int,
                png_level: int, threads: bool = False) -> Iterator[WorkerPool]:  # fmt: skip
    pool = WorkerPool(count, target, iceoryx, region_bytes, png_level, threads)
    try:
        yield pool
    finally:
        pool.close()


@dataclass
class PhaseContext:
    """What one phase runs against: clients, the service's CPU and copy probes, the helper's CPU probe."""

    pool: WorkerPool
    service_cpu: ProcessCpu
    copies: CopyCounter
    helper_cpu: ProcessCpu | None
    checksum_mode: str | None
    deadline: float


Progress = Callable[[Cell, bool], None]


def run_phase(cells: list[Cell], phase: Phase, ctx: PhaseContext, progress: Progress) -> None:
    """Interleave ``cells`` round by round until each is done (see the module docstring)."""
    active = list(cells)
    last_copies = ctx.copies.read()
    for _round in range(MAX_ROUNDS):
        if not active:
            return
        for cell in list(active):
            progress(cell, False)
            last_copies = _one_slice(cell, phase, ctx, last_copies)
            if cell.warmed and cell.done(phase.target_samples, phase.budget_s, phase.min_samples):
                active.remove(cell)
                progress(cell, True)
        if time.monotonic() > ctx.deadline:
            break
    for cell in active:
        cell.truncated = True
        progress(cell, True)


def _one_slice(
    cell: Cell, phase: Phase, ctx: PhaseContext, last_copies: dict[str, float] | None
) -> dict[str, float] | None:
    warm_up = not cell.warmed
    if warm_up:
        options = {"min_iter": phase.warmup_iters, "max_iter": max(phase.warmup_iters, phase.max_iter_per_slice),
                   "slice_s": phase.warmup_s, "verify": ctx.checksum_mode}  # fmt: skip
    else:
        missing = max(1, phase.target_samples - len(cell.latencies))
        share = -(-phase.target_samples // max(1, phase.min_slices))  # spread the target over min_slices rounds
        per_client = -(-min(missing, share) // cell.concurrency)
        options = {"min_iter": 1, "max_iter": max(1, min(per_client, phase.max_iter_per_slice)),
                   "slice_s": phase.slice_s, "verify": None, "discard": cell.discard}  # fmt: skip
    if cell.path == "iceoryx2" and options["verify"] is None and warm_up:
        options["verify"] = "sampled"  # the helper always answers with the sampled checksum
    cpu = ctx.helper_cpu if cell.path == "iceoryx2" and ctx.helper_cpu is not None else ctx.service_cpu
    ctx.pool.prepare(cell.path, cell.size, cell.concurrency)
    cpu_before = cpu.read()
    results = ctx.pool.run(cell.path, cell.size, cell.concurrency, options)
    cpu_after = cpu.read()
    copies = ctx.copies.read() if MODES[cell.path] is not None else last_copies
    if warm_up:
        cell.warmed = True
        latencies = sorted(x for result in results for x in result["latencies"])
        if latencies and latencies[len(latencies) // 2] < FAST_CELL_S:
            cell.discard = SLICE_WARMUP
        return copies
    service_cpu = None if cpu_before is None or cpu_after is None else max(0.0, cpu_after - cpu_before)
    cell.add(results, service_cpu, _copied_delta(cell.path, last_copies, copies))
    return copies


def _copied_delta(path: str, before: dict[str, float] | None, after: dict[str, float] | None) -> float | None:
    mode = MODES[path]
    if mode is None:
        return 0.0  # the iceoryx2 helper copies nothing: it reads the loaned memory in place
    if before is None or after is None:
        return None
    return max(0.0, after.get(mode, 0.0) - before.get(mode, 0.0))


def make_cells(
    engine: str, paths: tuple[str, ...], sizes: tuple[Size, ...], concurrency: tuple[int, ...], phase: str
) -> list[Cell]:
    """Every combination, in a fixed order (size, then clients, then path); iceoryx2 at one client only."""
    cells = []
    for size in sizes:
        for clients in concurrency:
            for path in paths:
                if path == "iceoryx2" and clients != 1:
                    continue
                cells.append(Cell(engine, path, size, clients, phase))
    return cells
