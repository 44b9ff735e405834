"""Round-trip latency of the bridge alone: ``python -m shmbridge.bench.roundtrip``.

Starts its own service (null engine, sampled checksum, sessions only) unless ``--socket`` names one, then
times, per frame size, a request whose pixels were written in place in a slot (zero-copy) and one whose
pixels are copied in from an ordinary numpy array, in three phases: in place, copies between other
sizes' copies, a stream of copies of one size. Within each phase the sizes take turns (round by round,
or block by block) so drift in the machine's speed hits every cell alike. Prints p50 and p99 in
microseconds.

In the in-place blocks a ``client`` row times the high-level ``Client.ocr(frame)`` of a frame in a slot
beside the low-level ``SessionClient.submit`` (``in-place``): what the shell adds. Each copied row has a
floor row, the bare ``np.copyto`` into the slot with no round trip, in the same cache state (``copy-in``,
``copy-warm``, ``copy-hot``); the copied rows are printed as a ratio to it, since no copy beats the
machine's memcpy.

The copy is timed three times, because at 1080p and above it costs what the memory system costs, and
that depends on where the bytes are:

- ``copied-in``: the source and the slot were both pushed out of the caches by the other sizes' copies
  since this size's last one (a 4K copy moves 48 MB, more than this machine's 32 MB L3): the worst case;
- ``copied-warm``: the source was just read in full, as a frame a caller has just captured or rendered
  is; the slot was pushed out by the other sizes' copies since this size's ``copied-in``;
- ``copied-hot``: a stream of frames of one size sent back to back, each just produced, into the slot
  the previous one used (timed in a phase of its own, in blocks per size). Only where source and slot
  fit in the caches together is it hot: at 4K (48 MB) it is as cold as the others.

With iceoryx2 installed (the ``bench`` extra, Linux only) an ``iceoryx2`` row is timed too: the peer
zero-copy middleware's loan, send, wait and receive of the same frame sizes (``iceoryx.py``), in blocks
of ``BLOCK`` rounds taking turns with the in-place blocks, so both see the same minutes of the machine.
It is the floor that ``in-place`` is read against: this VM's speed moves by 2x within minutes, and the
two rows move together. Each block starts with one untimed round (see ``_in_turns``). With
``--low-latency`` the service's request stays held through the reference's blocks (they last
milliseconds, the hold 0.25 s), so the reference runs with idle CPUs polling too: the same machine
state for both. ``--no-reference``leaves the row out.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..client.session import SessionClient
from ..models import low_latency_state
from ..service.wakeups import OFF_STATUS
from ..stats import percentile as nearest_rank
from . import service
from .iceoryx import IceoryxClient, iceoryx_helper, unavailable_reason

SIZES = {"64x64": (64, 64), "1920x1080": (1080, 1920), "3840x2160": (2160, 3840)}


@contextlib.contextmanager
def own_service(workers: int = 1, low_latency: bool = False) -> Iterator[service.ServiceHandle]:
    """A private ``shmbridge serve --engine null`` for the duration of the benchmark. With ``low_latency``
    it also listens on loopback HTTP, only so that it can say whether the hold could be turned on."""
    extra = ["--low-latency"] if low_latency else []
    with service.own_service("null", http=low_latency, regions=False, workers=workers, extra=extra) as handle:
        assert handle.socket_path is not None
        yield handle


def hold_line(handle: service.ServiceHandle | None) -> str:
    """What the measured service did about idle CPUs, as it reported it (not what the flags asked for)."""
    if handle is None:
        return "low-latency unknown (a running service)"
    status = handle.low_latency or dict(OFF_STATUS)  # an own service without HTTP was not asked for it
    state = low_latency_state(status)
    if state == "unavailable":
        return f"low-latency asked for but unavailable: {status.get('reason')}"
    return f"low-latency {state}"


def percentile(values: list[float], q: float) -> float:
    """The project's nearest-rank percentile (``shmbridge.stats``) of unsorted samples."""
    return nearest_rank(sorted(values), q)


IN_PLACE = "in-place"
#: ``Client.ocr(frame)`` of a frame in a slot: the high-level client over the same kind of session.
CLIENT = "client"
COPIED = ("copied-in", "copied-warm", "copied-hot")
#: The bare copy alone (``np.copyto`` into the slot, no round trip), in the cache state of each copied row.
FLOORS = {"copied-in": "copy-in", "copied-warm": "copy-warm", "copied-hot": "copy-hot"}
REFERENCE = "iceoryx2"
BLOCK = 50  # rounds one loop runs before the next one takes its turn (in place vs reference, stream sizes)

#: Per (size, path), the timed round trips in seconds.
Samples = dict[tuple[str, str], list[float]]
#: One round of one loop: what it timed, per (size, path).
Round = Callable[[], list[tuple[tuple[str, str], float]]]


def measure(socket_path: Path, rounds: int, warmup: int, reference: IceoryxClient | None = None) -> Samples:
    """Per (size, path), the round trips of the ``rounds`` rounds after ``warmup``, in seconds.

    Three phases: the in-place round trips (and the reference's, in turns with them), the copies
    between other sizes' copies, the streams of copies. A 6-24 MB copy between two in-place requests
    pushes both processes' interpreter state out of the caches and would charge the copy's cost to the
    next in-place request; the copy rows carry it.
    """
    from ..client import Client

    rng = np.random.default_rng(0)
    high_level = Client(socket=socket_path, mode="shm", timeout=30)
    with SessionClient(socket_path, timeout=30) as session, high_level:
        leases = {}
        sources = {}
        for name, (h, w) in SIZES.items():
            leases[name] = session.acquire(h * w * 3)
            frame = leases[name].frame(h, w, 3)
            frame[:] = rng.integers(0, 256, frame.shape, dtype=np.uint8)
            sources[name] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        frames = {}
        with contextlib.ExitStack() as slots:
            for name, (h, w) in SIZES.items():
                frames[name] = slots.enter_context(high_level.frame(h, w, 3))
                frames[name][:] = rng.integers(0, 256, frames[name].shape, dtype=np.uint8)
            samples = _in_place(session, leases, rounds, warmup, reference, high_level, frames)
        try:
            samples.update(_copied(session, leases, sources, rounds, warmup))
            samples.update(_streamed(session, leases, sources, rounds, warmup))
        finally:
            for lease in leases.values():
                session.release(lease)
    return samples


def _in_place(
    session: SessionClient,
    leases: dict[str, Any],
    rounds: int,
    warmup: int,
    reference: IceoryxClient | None,
    client: Any,
    frames: dict[str, np.ndarray],
) -> Samples:
    """In-place round trips of the low-level session and of ``Client.ocr``, and the reference's, in
    blocks of ``BLOCK`` rounds taking turns: each runs its own loop, as it would in use, and all see the
    same minutes of the machine."""

    def shmbridge_round() -> list[tuple[tuple[str, str], float]]:
        return [((name, IN_PLACE), _timed(session.submit, leases[name])) for name in SIZES]

    def client_round() -> list[tuple[tuple[str, str], float]]:
        return [((name, CLIENT), _timed(client.ocr, frames[name])) for name in SIZES]

    turns: list[Round] = [shmbridge_round, client_round]
    if reference is not None:
        round_trip = reference.round_trip
        turns.append(lambda: [((name, REFERENCE), _timed(round_trip, h, w)) for name, (h, w) in SIZES.items()])
    return _in_turns(turns, rounds, warmup)


def _copied(
    session: SessionClient, leases: dict[str, Any], sources: dict[str, np.ndarray], rounds: int, warmup: int
) -> Samples:
    """``copied-in`` and ``copied-warm``: each round makes two passes over the sizes, ``copied-in`` for
    every size, then ``copied-warm`` for every size. So between a size's ``copied-in`` and its
    ``copied-warm`` the other sizes' copies ran (at least 24 MB at 4K, plus 6 MB of 1080p), which pushes
    that size's slot out of the caches again while its source is read back in just before."""
    samples: Samples = {(name, path): [] for name in SIZES for path in (*COPIED[:2], *list(FLOORS.values())[:2])}
    for index in range(warmup + rounds):
        timings: dict[tuple[str, str], float] = {}
        for name in SIZES:  # the copy a caller without a frame pays
            timings[(name, "copied-in")] = _copy_and_submit(session, leases[name], sources[name])
        for name in SIZES:
            sources[name].max()  # the caller just produced this frame: it is in the caches
            timings[(name, "copied-warm")] = _copy_and_submit(session, leases[name], sources[name])
        for name in SIZES:  # the floors: the same two passes, the copy alone
            timings[(name, FLOORS["copied-in"])] = _timed(np.copyto, leases[name].array, sources[name])
        for name in SIZES:
            sources[name].max()
            timings[(name, FLOORS["copied-warm"])] = _timed(np.copyto, leases[name].array, sources[name])
        if index >= warmup:
            for key, seconds in timings.items():
                samples[key].append(seconds)
    return samples


def _streamed(
    session: SessionClient, leases: dict[str, Any], sources: dict[str, np.ndarray], rounds: int, warmup: int
) -> Samples:
    """``copied-hot``: a stream of frames of one size, each just produced, into the slot the previous
    one used, in blocks of ``BLOCK`` frames per size taking turns."""

    def stream_of(name: str) -> Round:
        def one_frame() -> list[tuple[tuple[str, str], float]]:
            sources[name].max()  # the caller just produced this frame: it is in the caches
            return [((name, "copied-hot"), _copy_and_submit(session, leases[name], sources[name]))]

        return one_frame

    def floor_of(name: str) -> Round:
        def one_copy() -> list[tuple[tuple[str, str], float]]:
            sources[name].max()
            return [((name, FLOORS["copied-hot"]), _timed(np.copyto, leases[name].array, sources[name]))]

        return one_copy

    return _in_turns([make(name) for name in SIZES for make in (stream_of, floor_of)], rounds, warmup)


def _in_turns(turns: list[Round], rounds: int, warmup: int) -> Samples:
    """Run each turn's rounds in blocks of ``BLOCK``, the turns taking their blocks in order, and keep
    what the rounds after ``warmup`` timed. With more than one turn, each block starts with one extra
    round that is not timed: it pays for the switch from the other turn (this one's state out of the
    caches), which a loop in use does not pay."""
    samples: Samples = {}
    for first in range(0, warmup + rounds, BLOCK):
        for one_round in turns:
            if len(turns) > 1:
                one_round()
            for index in range(first, min(first + BLOCK, warmup + rounds)):
                timings = one_round()
                for key, seconds in timings:
                    bucket = samples.setdefault(key, [])
                    if index >= warmup:
                        bucket.append(seconds)
    return samples


def _copy_and_submit(session: SessionClient, lease: Any, source: np.ndarray) -> float:
    """Seconds to copy ``source`` into the lease's slot and have the service answer for it."""
    return _timed(lambda: (np.copyto(lease.array, source), session.submit(lease)))


def _timed(call: Callable[..., object], *args: Any) -> float:
    """Seconds ``call(*args)`` took."""
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench.roundtrip", description=__doc__)
    parser.add_argument("--socket", type=Path, help="measure a running service instead of starting one")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--low-latency", action="store_true", help="start the service with --low-latency (idle CPUs poll while busy)"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="leave out the iceoryx2 row (it runs when iceoryx2 is installed)"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    if args.socket and args.low_latency:
        parser.error("--low-latency applies to the service it starts itself; start the running one with it")
    missing = "left out (--no-reference)" if args.no_reference else unavailable_reason()
    with contextlib.ExitStack() as stack:
        handle = None if args.socket else stack.enter_context(own_service(low_latency=args.low_latency))
        socket_path = args.socket or Path(handle.socket_path)  # type: ignore[union-attr]
        reference = None
        if missing is None:
            height, width = SIZES["3840x2160"]
            target, _pid = stack.enter_context(iceoryx_helper(height * width * 3))
            reference = IceoryxClient(target)
            stack.callback(reference.close)
        samples = measure(socket_path, args.rounds, args.warmup, reference)
    print(f"shmbridge round trip, null engine, {args.rounds} rounds after {args.warmup} warm-up, "
          f"pid {os.getpid()}, {os.cpu_count()} CPUs, {hold_line(handle)}")  # fmt: skip
    if missing is not None:
        print(f"no {REFERENCE} reference row: {missing}")
    print(f"{'frame':>10} {'path':>11} {'p50 µs':>9} {'p99 µs':>9}")
    for name in SIZES:
        for path in (IN_PLACE, CLIENT, REFERENCE, *COPIED, *FLOORS.values()):
            if values := samples.get((name, path)):
                p50, p99 = percentile(values, 0.5) * 1e6, percentile(values, 0.99) * 1e6
                print(f"{name:>10} {path:>11} {p50:9.1f} {p99:9.1f}")
    for name in SIZES:
        extra = (percentile(samples[(name, CLIENT)], 0.5) - percentile(samples[(name, IN_PLACE)], 0.5)) * 1e6
        print(f"{name}: {CLIENT} p50 is {IN_PLACE} p50 + {extra:.1f} µs (Client.ocr against SessionClient.submit)")
    for name in SIZES:
        floors = ", ".join(
            f"{copied} {percentile(samples[(name, copied)], 0.5) / percentile(samples[(name, floor)], 0.5):.2f}x"
            for copied, floor in FLOORS.items()
        )
        print(f"{name}: copied p50 against the bare copy's in the same cache state: {floors}")
    for name in SIZES:
        if (name, REFERENCE) in samples:
            ratio = percentile(samples[(name, IN_PLACE)], 0.5) / percentile(samples[(name, REFERENCE)], 0.5)
            print(f"{name}: {IN_PLACE} p50 is {ratio:.2f}x the {REFERENCE} p50 of the same rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
