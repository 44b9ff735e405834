"""Round-trip latency of the bridge alone: ``python -m shmbridge.bench.roundtrip``.

Starts its own service (null engine, sampled checksum, sessions only) unless ``--socket`` names one, then
times, per frame size, a request whose pixels were written in place in a slot (zero-copy) and one whose
pixels are copied in from an ordinary numpy array. Sizes are interleaved round by round so drift in the
machine's speed hits every cell alike. Prints p50 and p99 in microseconds.

The copy is timed twice, because at 1080p and above it costs what the memory system costs: ``copied-in``
copies from a source that the other sizes' copies of the same round have pushed out of the caches (a
4K round moves 50 MB, more than this machine's 32 MB L3), ``copied-warm`` from a source that was just read
in full, as a frame a caller has just captured or rendered is.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..client.session import SessionClient
from ..models import low_latency_mode
from ..service.wakeups import OFF_STATUS
from . import service

SIZES = {"64x64": (64, 64), "1920x1080": (1080, 1920), "3840x2160": (2160, 3840)}


@contextlib.contextmanager
def own_service(workers: int = 1, low_latency: bool = False) -> Iterator[service.ServiceHandle]:
    """A private ``shmbridge serve --engine null`` for the duration of the benchmark. With ``low_latency``
    it also listens on loopback HTTP, only so that it can say whether the mode could be turned on."""
    extra = ["--low-latency"] if low_latency else []
    with service.own_service("null", http=low_latency, regions=False, workers=workers, extra=extra) as handle:
        assert handle.socket_path is not None
        yield handle


def mode_line(handle: service.ServiceHandle | None) -> str:
    """What the measured service did about idle CPUs, as it reported it (not what the flags asked for)."""
    if handle is None:
        return "low-latency unknown (a running service)"
    status = handle.low_latency or dict(OFF_STATUS)  # an own service without HTTP was not asked for it
    if low_latency_mode(status) == "unavailable":
        return f"low-latency asked for but unavailable: {status.get('reason')}"
    return f"low-latency {low_latency_mode(status)}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(socket_path: Path, rounds: int, warmup: int) -> dict[tuple[str, str], list[float]]:
    samples: dict[tuple[str, str], list[float]] = {}
    rng = np.random.default_rng(0)
    with SessionClient(socket_path, timeout=30) as session:
        leases = {}
        sources = {}
        for name, (h, w) in SIZES.items():
            leases[name] = session.acquire(h * w * 3)
            frame = leases[name].frame(h, w, 3)
            frame[:] = rng.integers(0, 256, frame.shape, dtype=np.uint8)
            sources[name] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            samples[(name, "in-place")] = []
            samples[(name, "copied-in")] = []
            samples[(name, "copied-warm")] = []
        clock = time.perf_counter
        for index in range(warmup + rounds):
            for name in SIZES:
                lease = leases[name]
                started = clock()
                session.submit(lease)
                in_place = clock() - started
                started = clock()
                np.copyto(lease.array, sources[name])  # the copy a caller without a frame pays
                session.submit(lease)
                copied = clock() - started
                source = sources[name]
                source.max()  # the caller just produced this frame: it is in the caches
                started = clock()
                np.copyto(lease.array, source)
                session.submit(lease)
                copied_warm = clock() - started
                if index >= warmup:
                    samples[(name, "in-place")].append(in_place)
                    samples[(name, "copied-in")].append(copied)
                    samples[(name, "copied-warm")].append(copied_warm)
        for lease in leases.values():
            session.release(lease)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench.roundtrip", description=__doc__)
    parser.add_argument("--socket", type=Path, help="measure a running service instead of starting one")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--low-latency", action="store_true", help="start the service with --low-latency (idle CPUs poll while busy)"
    )
    args = parser.parse_args(argv)
    if args.socket and args.low_latency:
        parser.error("--low-latency applies to the service it starts itself; start the running one with it")
    with contextlib.ExitStack() as stack:
        handle = None if args.socket else stack.enter_context(own_service(low_latency=args.low_latency))
        socket_path = args.socket or Path(handle.socket_path)  # type: ignore[union-attr]
        samples = measure(socket_path, args.rounds, args.warmup)
    print(f"shmbridge round trip, null engine, {args.rounds} rounds after {args.warmup} warm-up, "
          f"pid {os.getpid()}, {os.cpu_count()} CPUs, {mode_line(handle)}")  # fmt: skip
    print(f"{'frame':>10} {'path':>11} {'p50 µs':>9} {'p99 µs':>9}")
    for (name, path), values in samples.items():
        print(f"{name:>10} {path:>11} {percentile(values, 0.5) * 1e6:9.1f} {percentile(values, 0.99) * 1e6:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
