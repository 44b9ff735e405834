"""``python -m shmbridge.bench.abuse``: hostile peers against a live service while a well-behaved client
measures its latency.

It starts its own service (null engine, full checksums, regions on, ``--request-timeout 5``) under an
open-file limit of 1024 (soft and hard, set on this process before the start, as on a machine with the
usual limit), then runs phases one after another: quiet, each attack, quiet again. A bystander
session thread sends a 64x64 frame every 5 ms throughout and records each round trip; each attack runs
in its own process, so its work never shares this process's GIL with the bystander. After each attack
its peers leave, and once the service has settled its fds, shared-memory mappings and RSS are compared
with the first quiet phase.

Attacks: ``alloc-churn`` (4 x 128 MiB segments, disconnect, again), ``fd-hoard`` (sessions holding 64 KiB
segments until refused, then regions under a new client name each until refused), ``trickle`` (200
connections sending one HELLO byte every 1.5 s), ``stalled-bodies`` (30 uploads announcing 128 MiB that
send 10 bytes), ``tiff`` (a TIFF of 100k chained frames, again and again), ``truncate`` (a region file
truncated and restored in a tight loop while requests read it; ``--truncate-seconds``, 60 by default).

Exit status 0 when the service survived every attack and stayed within the bounds (``FD_BOUND``,
``MAP_BOUND``, ``RSS_BOUND``), 1 otherwise. Bounded in time: the phases' durations plus at most
``SETTLE`` seconds each. It measures; it asserts nothing about latency.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .abuse_attacks import ATTACKS
from .service import ServiceHandle, own_service
from .stats import percentile

FD_BOUND = 16  # descriptors more than in the first quiet phase, once the attackers are gone
MAP_BOUND = 0  # shared-memory mappings more than in the first quiet phase
RSS_BOUND = 256 << 20
SETTLE = 15.0  # seconds to wait for the service to give everything back after an attack
NOFILE = 1024
MiB = 1 << 20


def _run_attack(name: str, handle: ServiceHandle, stop: Any, ready: Any, results: Any) -> None:
    outcomes: dict[str, int] = {}
    ready.set()  # imports are done: the phase's clock starts now
    try:
        ATTACKS[name](handle, stop, outcomes)
    except Exception as exc:  # reported, not raised: the phase's figures still count
        outcomes[f"attacker failed: {type(exc).__name__}: {exc}"[:200]] = 1
    results.put(outcomes)


# -- the bystander and the service's resources -----------------------------------------------------------


class Bystander:
    """A well-behaved session client on a thread: one 64x64 frame every 5 ms, each round trip recorded."""

    def __init__(self, handle: ServiceHandle) -> None:
        from ..client.sync_client import Client

        self.client = Client(url=str(handle.url), socket=handle.socket_path, mode="shm", timeout=10)
        self.samples: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bystander", daemon=True)

    def _loop(self) -> None:
        image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        while not self._stop.wait(0.005):
            started = time.perf_counter()
            try:
                self.client.ocr(image)
            except Exception:
                self.errors += 1
                continue
            self.samples.append(time.perf_counter() - started)

    def start(self) -> None:
        self._thread.start()

    def take(self) -> tuple[list[float], int]:
        """The samples and errors since the last call."""
        samples, errors = self.samples, self.errors
        self.samples, self.errors = [], 0
        return samples, errors

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()


def resources(pid: int) -> dict[str, int]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    maps = sum(1 for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "shmbridge-" in line)
    rss = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))  # fmt: skip
    return {"fds": fds, "mappings": maps, "rss": rss}


def _within(now: dict[str, int], base: dict[str, int]) -> bool:
    return (
        now["fds"] - base["fds"] <= FD_BOUND
        and now["mappings"] - base["mappings"] <= MAP_BOUND
        and now["rss"] - base["rss"] <= RSS_BOUND
    )


def _context() -> Any:
    """Attackers start from a fork server that imported this module once: a fresh process each (never a
    fork of this one, whose bystander thread may hold locks), without paying the imports each time."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def _phase(name: str, seconds: float, handle: ServiceHandle, bystander: Bystander, base: dict[str, int] | None
           ) -> dict[str, Any]:  # fmt: skip
    ctx = _context()
    began = time.monotonic()
    outcomes: dict[str, int] = {}
    process = None
    if name in ATTACKS:
        results = ctx.Queue()
        stop, ready = ctx.Event(), ctx.Event()
        process = ctx.Process(target=_run_attack, args=(name, handle, stop, ready, results), daemon=True)
        process.start()
        ready.wait(60)
    bystander.take()
    time.sleep(seconds)
    samples, errors = bystander.take()
    if process is not None:
        stop.set()
        try:
            outcomes = results.get(timeout=30)  # before join: a full pipe would keep the child from exiting
        except queue.Empty:
            outcomes = {"attacker did not report within 30 s": 1}
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
    alive = handle.pid is not None and Path(f"/proc/{handle.pid}").exists()
    settled = resources(handle.pid) if alive and handle.pid else {}
    deadline = time.monotonic() + SETTLE
    while alive and base is not None and not _within(settled, base) and time.monotonic() < deadline:
        time.sleep(0.25)
        settled = resources(handle.pid)  # type: ignore[arg-type]
    ordered = sorted(samples)
    row: dict[str, Any] = {
        "phase": name,
        "seconds": seconds,
        "requests": len(samples),
        "errors": errors,
        "p50_ms": round(percentile(ordered, 0.5) * 1000, 2) if ordered else None,
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2) if ordered else None,
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        "service_alive": alive,
        "resources": settled,
        "attack": outcomes,
        "wall_s": round(time.monotonic() - began, 1),
    }
    if base is not None and settled:
        row["growth"] = {key: settled[key] - base[key] for key in base}
        row["within_bounds"] = _within(settled, base)
    return row


def run(quiet_seconds: float, attack_seconds: float, truncate_seconds: float, only: list[str]) -> dict[str, Any]:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))  # inherited by the service
    except (ImportError, ValueError, OSError) as exc:
        print(f"could not set the open-file limit to {NOFILE}: {exc}", file=sys.stderr)
    extra = ["--engine-option", "checksum_mode=full", "--request-timeout", "5", "--no-warm-up"]
    rows: list[dict[str, Any]] = []
    with own_service("null", extra=extra) as handle:
        assert handle.pid is not None
        bystander = Bystander(handle)
        bystander.client.ocr(np.zeros((64, 64, 3), np.uint8))  # the session and its segment exist first
        bystander.start()
        try:
            quiet = _phase("quiet", quiet_seconds, handle, bystander, None)
            rows.append(quiet)
            base = quiet["resources"]
            for name in only:
                seconds = truncate_seconds if name == "truncate" else attack_seconds
                rows.append(_phase(name, seconds, handle, bystander, base))
                print(_line(rows[-1], quiet), file=sys.stderr)
                if not rows[-1]["service_alive"]:
                    break
            rows.append(_phase("quiet-after", quiet_seconds, handle, bystander, base))
        finally:
            bystander.close()
    ok = all(row["service_alive"] and row.get("within_bounds", True) for row in rows)
    return {"ok": ok, "nofile": NOFILE, "bounds": {"fds": FD_BOUND, "mappings": MAP_BOUND, "rss": RSS_BOUND},
            "rows": rows}  # fmt: skip


def _line(row: dict[str, Any], quiet: dict[str, Any]) -> str:
    ratio = (row["p99_ms"] / quiet["p99_ms"]) if row["p99_ms"] and quiet["p99_ms"] else None
    if ratio is None:
        return f"{row['phase']}: {row}"
    return (f"{row['phase']:15} n={row['requests']:5} err={row['errors']:3} p50={row['p50_ms']} ms "
            f"p99={row['p99_ms']} ms ({ratio:.2f}x quiet) max={row['max_ms']} ms alive={row['service_alive']} "
            f"growth={row.get('growth')} wall={row['wall_s']} s attack={row['attack']}")  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    quiet_p99 = report["rows"][0]["p99_ms"]
    lines = ["| phase | s | requests | errors | p50 ms | p99 ms | p99 / quiet | max ms | growth: fds / maps / RSS MiB "
             "| alive |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in report["rows"]:
        growth = row.get("growth")
        grown = f"{growth['fds']} / {growth['mappings']} / {growth['rss'] / MiB:.0f}" if growth else "baseline"
        ratio = f"{row['p99_ms'] / quiet_p99:.2f}x" if row["p99_ms"] and quiet_p99 else "-"
        lines.append(f"| {row['phase']} | {row['seconds']:g} | {row['requests']} | {row['errors']} | {row['p50_ms']} "
                     f"| {row['p99_ms']} | {ratio} | {row['max_ms']} | {grown} | {row['service_alive']} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench.abuse", description=__doc__.split("\n")[0])
    parser.add_argument("--quiet-seconds", type=float, default=10.0)
    parser.add_argument("--attack-seconds", type=float, default=10.0)
    parser.add_argument("--truncate-seconds", type=float, default=60.0)
    parser.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated, from {', '.join(ATTACKS)}")
    parser.add_argument("--json", type=Path, help="write the whole report here")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.attacks.split(",") if name.strip()]
    unknown = [name for name in only if name not in ATTACKS]
    if unknown:
        parser.error(f"unknown attack(s): {', '.join(unknown)}")
    report = run(args.quiet_seconds, args.attack_seconds, args.truncate_seconds, only)
    print(markdown(report))
    for row in report["rows"]:
        if row["attack"]:
            print(f"{row['phase']}: {json.dumps(row['attack'])}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print("OK: the service survived every attack within the bounds" if report["ok"] else "FAILED", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
