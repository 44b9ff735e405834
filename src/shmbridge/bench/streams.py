"""``python -m shmbridge.bench.streams``: replay agent-step sequences through a stream and a full read.

For every ``seq-*`` folder of ``--sequences`` (by default ../shared/fixtures/screens, found from the
repository root), and for each step, in the same run and on the same engine instance:

- a full read of the frame (the reference), and the stream's read of it, each timed;
- the stream's word F1 against that full read (bag of words, the scorer's own word rules);
- recall and precision of both against the truth, with the folder's own ``score.py``;
- the same frame read again through the stream (unchanged) ``--repeats`` times;
- with ``--compare-no-scroll``, a second stream without scroll detection, to show what it pays.

By default every read goes through ``Client`` over shared memory to a service of its own (each step's
frame is written into a slot once, then every read sends it by reference), and CPU time is the
service's. ``--in-process`` calls the engine directly (``engine_reader``) instead, which also allows
``--compare-no-scroll``. The time-based keyframe rule is off in both (the service's
``--stream-keyframe-seconds 0``; in-process, time passes by ``--step-seconds`` per frame): the full reads
this benchmark makes between stream frames would trigger it, where an agent's real pace would not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from ..engines import create_engine, default_engine_name
from ..engines.results import reading_order
from ..models import PixelFormat, Roi, TextLine
from ..streams import Stream, StreamPolicy, StreamStep, engine_reader, fingerprint
from .machine import load_average
from .screens import load_scorer
from .stats import percentile

DEFAULT_SEQUENCES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "screens"
#: Steps whose change covers at most this fraction of the tiles are the issue's "small" steps.
SMALL_CHANGE = 0.05
SMALL_ACTIONS = ("type", "hover", "select", "close")


def as_boxes(lines: list[TextLine]) -> list[dict[str, Any]]:
    return [{"text": ln.text, "x": ln.box.x, "y": ln.box.y, "w": ln.box.width, "h": ln.box.height} for ln in lines]


def word_f1(scorer: ModuleType, ours: list[TextLine], reference: list[TextLine]) -> float:
    """Bag-of-words F1 of ``ours`` against ``reference``, words as the scorer normalises them."""
    mine = Counter(word for line in ours for word in scorer.tokens(line.text))
    theirs = Counter(word for line in reference for word in scorer.tokens(line.text))
    if not mine and not theirs:
        return 1.0
    matched = sum((mine & theirs).values())
    precision = matched / max(1, sum(mine.values()))
    recall = matched / max(1, sum(theirs.values()))
    return 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)


class _StepClock:
    """A stream's clock that advances by a fixed step per frame read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.step


class InProcessReads:
    """Reads by the engine in this process: a full read, and each stream variant's read."""

    label = "called in-process (engine_reader, not through Client)"

    def __init__(self, engine: Any, policies: dict[str, StreamPolicy], step_seconds: float) -> None:
        self._recognize = engine_reader(engine, PixelFormat.RGB)
        self._policies = policies
        self._step_seconds = step_seconds
        self._streams: dict[tuple[str, str], tuple[Stream, _StepClock]] = {}

    @contextlib.contextmanager
    def frame(self, frame: np.ndarray) -> Iterator[np.ndarray]:
        yield frame

    def full(self, frame: np.ndarray) -> list[TextLine]:
        height, width = frame.shape[:2]
        return reading_order(self._recognize(frame, Roi(x=0, y=0, width=width, height=height)))

    def step(self, sequence: str, variant: str, frame: np.ndarray, *, advance: bool = True) -> StreamStep:
        key = (sequence, variant)
        if key not in self._streams:
            clock = _StepClock(self._step_seconds)
            self._streams[key] = (Stream(sequence, self._policies[variant], clock=clock), clock)
        stream, clock = self._streams[key]
        if advance:
            clock.tick()
        return stream.read(frame, self._recognize)

    def cpu_seconds(self) -> float:
        return time.process_time()


class ClientReads:
    """Reads through ``Client`` over shared memory: a full read, and the service's stream read."""

    label = "through Client over shared memory, frames in a slot, CPU time of the service"

    def __init__(self, client: Any, service_pid: int) -> None:
        self._client = client
        self._stat = Path(f"/proc/{service_pid}/stat")

    @contextlib.contextmanager
    def frame(self, frame: np.ndarray) -> Iterator[np.ndarray]:
        """The frame in a slot of the session, so each read sends it by reference."""
        with self._client.frame(*frame.shape) as slot:
            np.copyto(slot, frame)
            yield slot

    def full(self, frame: np.ndarray) -> list[TextLine]:
        return list(self._client.ocr(frame).lines)

    def step(self, sequence: str, variant: str, frame: np.ndarray, *, advance: bool = True) -> StreamStep:
        result = self._client.ocr(frame, stream=f"{sequence}.{variant}")
        return StreamStep(lines=list(result.lines), info=result.stream)

    def cpu_seconds(self) -> float:
        fields = self._stat.read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def replay(folder: Path, reads: Any, policies: dict[str, StreamPolicy], args: argparse.Namespace) -> dict[str, Any]:
    """Every step of one sequence: full read, each stream's read, agreement and scores."""
    scorer = load_scorer(folder)
    steps = json.loads((folder / "steps.json").read_text())["steps"]
    rows: list[dict[str, Any]] = []
    scores: dict[str, list[dict[str, Any]]] = {"full": [], **{name: [] for name in policies}}
    for step in steps:
        picture = np.asarray(Image.open(folder / step["frame"]).convert("RGB"))
        truth = json.loads((folder / step["truth"]).read_text())
        with reads.frame(picture) as frame:
            rows.append(_step(folder.name, step, frame, truth, scorer, reads, policies, scores, args))
        print(_step_line(folder.name, rows[-1], policies), flush=True)
    totals = {name: scorer.aggregate(items) for name, items in scores.items()}
    return {"sequence": folder.name, "steps": rows, "recall": {n: t["recall"] for n, t in totals.items()},
            "precision": {n: t["precision"] for n, t in totals.items()}}  # fmt: skip


def _step(
    sequence: str,
    step: dict[str, Any],
    frame: np.ndarray,
    truth: Any,
    scorer: ModuleType,
    reads: Any,
    policies: dict[str, StreamPolicy],
    scores: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One step: the full read (the reference), then each stream variant's read and its unchanged re-reads."""
    height, width = frame.shape[:2]
    started, cpu = time.perf_counter(), reads.cpu_seconds()
    full = reads.full(frame)
    full_ms, full_cpu_ms = (time.perf_counter() - started) * 1e3, (reads.cpu_seconds() - cpu) * 1e3
    full_score = scorer.score(truth, as_boxes(full))
    scores["full"].append(full_score)
    row: dict[str, Any] = {
        "step": step["frame"],
        "action": step["action"],
        "full_ms": full_ms,
        "full_cpu_ms": full_cpu_ms,
        "full_recall": full_score["recall"],
        "full_precision": full_score["precision"],
    }
    for name in policies:
        started, cpu = time.perf_counter(), reads.cpu_seconds()
        result = reads.step(sequence, name, frame)
        stream_ms, cpu_ms = (time.perf_counter() - started) * 1e3, (reads.cpu_seconds() - cpu) * 1e3
        info = result.info
        score = scorer.score(truth, as_boxes(result.lines))
        scores[name].append(score)
        unchanged = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            again = reads.step(sequence, name, frame, advance=False)
            unchanged.append((time.perf_counter() - started) * 1e3)
            assert again.info.changed_tiles == 0 and again.lines == result.lines
        row[name] = {
            "ms": stream_ms, "ratio": stream_ms / full_ms, "cpu_ms": cpu_ms,
            "cpu_ratio": cpu_ms / full_cpu_ms if full_cpu_ms else None,
            "f1_vs_full": word_f1(scorer, result.lines, full),
            "recall": score["recall"], "precision": score["precision"], "keyframe": info.reason,
            "changed": info.changed_tiles / info.tiles, "scroll": info.scroll, "rects": len(info.rects),
            "rect_area": sum(r.width * r.height for r in info.rects) / (height * width),
            "reused": info.reused_lines, "read": info.read_lines, "fingerprint_ms": info.fingerprint_ms,
            "unchanged_ms": unchanged,
        }  # fmt: skip
    return row


def _step_line(sequence: str, row: dict[str, Any], policies: dict[str, StreamPolicy]) -> str:
    parts = [
        f"{sequence} {row['step']} {row['action']:<7} full {row['full_ms']:8.0f} ms cpu {row['full_cpu_ms']:8.0f} ms"
    ]
    for name in policies:
        s = row[name]
        parts.append(
            f"| {name}: {s['ms']:8.1f} ms x{s['ratio']:.3f} cpu x{s['cpu_ratio']:.3f} "
            f"changed {s['changed']:6.1%} read {s['rect_area']:6.1%} "
            f"kf {s['keyframe'] or '-':<6} scroll {s['scroll']:5d} F1 {s['f1_vs_full']:.3f} "
            f"recall {s['recall']:.3f}/{row['full_recall']:.3f}"
        )
    return " ".join(parts)


def summarise(
    runs: list[dict[str, Any]], policies: dict[str, StreamPolicy], costs: tuple[list[float], list[float]]
) -> dict[str, Any]:
    """The issue's targets, per stream variant, from every step of every sequence."""
    summary: dict[str, Any] = {"fingerprint_1080p_ms": _spread(costs[0]), "copy_1080p_ms": _spread(costs[1])}
    steps = [row for run in runs for row in run["steps"]]
    for name in policies:
        groups: dict[str, list[dict[str, Any]]] = {"small": [], "scroll": [], "open": []}
        for row in steps:
            s = row[name]
            if row["action"] in SMALL_ACTIONS and s["changed"] <= SMALL_CHANGE:
                groups["small"].append(row)
            elif row["action"] in ("scroll", "open"):
                groups[row["action"]].append(row)
        summary[name] = {
            group: {
                "steps": len(items),
                "stream_ms": _spread([row[name]["ms"] for row in items]),
                "full_ms": _spread([row["full_ms"] for row in items]),
                "ratio_p50": statistics.median(row[name]["ratio"] for row in items) if items else None,
                "cpu_ratio_p50": statistics.median(row[name]["cpu_ratio"] for row in items) if items else None,
            }
            for group, items in groups.items()
        }
        summary[name]["unchanged_ms"] = _spread([ms for row in steps for ms in row[name]["unchanged_ms"]])
        summary[name]["min_f1_vs_full"] = min(row[name]["f1_vs_full"] for row in steps)
        summary[name]["recall_points_vs_full"] = {
            run["sequence"]: 100 * (run["recall"][name] - run["recall"]["full"]) for run in runs
        }
    return summary


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"p50": percentile(ordered, 0.5), "p99": percentile(ordered, 0.99), "n": len(ordered)}


def _fingerprint_cost(frames: list[np.ndarray], rounds: int = 50) -> tuple[list[float], list[float]]:
    """Fingerprint times at the frames' size, and as a reference in the same rounds, a plain copy of
    the same frame (memory bandwidth: what any pass over the pixels costs on this machine now)."""
    spent, copies = [], []
    scratch = np.empty_like(frames[0])
    for index in range(rounds):
        frame = frames[index % len(frames)]
        started = time.perf_counter()
        fingerprint(frame)
        spent.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        np.copyto(scratch, frame)
        copies.append((time.perf_counter() - started) * 1e3)
    return spent, copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench.streams", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=Path, default=DEFAULT_SEQUENCES, help="folder holding seq-* folders")
    parser.add_argument("--engine", default=default_engine_name())
    parser.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=5, help="unchanged re-reads per step")
    parser.add_argument("--step-seconds", type=float, default=2.0, help="virtual time between frames")
    parser.add_argument("--keyframe-area", type=float, default=StreamPolicy().keyframe_area)
    parser.add_argument("--compare-no-scroll", action="store_true", help="also run a stream without scroll detection")
    parser.add_argument("--in-process", action="store_true", help="call the engine here, not through Client")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    folders = sorted(path for path in args.sequences.glob("seq-*") if (path / "steps.json").is_file())
    if not folders:
        print(f"no seq-*/steps.json under {args.sequences}", file=sys.stderr)
        return 2
    options = dict(_option(text) for text in args.engine_option)
    policies = {"stream": StreamPolicy(keyframe_area=args.keyframe_area)}
    if args.compare_no_scroll:
        if not args.in_process:
            parser.error("--compare-no-scroll needs --in-process (a service's streams all scroll)")
        policies["no-scroll"] = StreamPolicy(keyframe_area=args.keyframe_area, scroll=False)
    with _reads(args, options, policies) as reads:
        print(f"engine {args.engine} {options or ''} {reads.label}; load average {load_average()} at start",
              flush=True)  # fmt: skip
        runs = [replay(folder, reads, policies, args) for folder in folders]
    first_frames = [np.asarray(Image.open(next(iter(sorted(f.glob("*.png"))))).convert("RGB")) for f in folders]
    summary = summarise(runs, policies, _fingerprint_cost(first_frames))
    print(json.dumps(summary, indent=1))
    print(f"load average {load_average()} at end")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary, "load_average": load_average()}, indent=1))
    return 0


@contextlib.contextmanager
def _reads(args: argparse.Namespace, options: dict[str, Any], policies: dict[str, StreamPolicy]) -> Iterator[Any]:
    """The reads of this run: the engine in-process, or a service of its own through ``Client``."""
    if args.in_process:
        engine = create_engine(args.engine, **options)
        engine.warm_up()
        try:
            yield InProcessReads(engine, policies, args.step_seconds)
        finally:
            engine.close()
        return
    from ..client import Client
    from .service import own_service

    extra = ["--stream-keyframe-seconds", "0", "--stream-keyframe-area", str(args.keyframe_area)]
    for key, value in options.items():
        extra += ["--engine-option", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    with own_service(args.engine, regions=False, extra=extra) as service:
        assert service.pid is not None
        with Client(service.url, socket=service.socket_path, mode="shm") as client:
            yield ClientReads(client, service.pid)


def _option(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


if __name__ == "__main__":
    sys.exit(main())
