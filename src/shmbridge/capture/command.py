"""``shmbridge watch``: follow the screen like ``tail -f``, printing the lines that appear and go.

Owns the command's flags and its output (text: ``+``/``-`` lines with their boxes; ``--json``: one object
per changed frame). Quiet while nothing changes. Must never hold logic the library lacks: it only drives
``Client.watch``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import ServiceUnavailable, ShmBridgeError, UsageError
from ..models import Roi
from ..output import changes_text, line_json
from .watch import WatchFrame


def _region(text: str) -> Roi:
    try:
        x, y, width, height = (int(part) for part in text.split(","))
        return Roi(x=x, y=y, width=width, height=height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a region is x,y,width,height in pixels, not {text!r}") from None


def add_watch(sub: argparse._SubParsersAction) -> None:
    from ..client.base import DEFAULT_URL, TransportPolicy
    from ..environment import URL_VARIABLE, url_from_environment

    watch = sub.add_parser("watch", help="follow the screen and print the text lines that appear and go",
                           description="Capture the X screen (zero-copy into shared memory where the display "
                           "allows it), OCR it when it changes, and print the lines added (+) and removed (-) "
                           "with their boxes. Quiet while nothing changes.")  # fmt: skip
    watch.set_defaults(log_level="warning", run=run_watch)
    watch.add_argument("--url", default=url_from_environment(DEFAULT_URL),
                       help=f"service URL (default: ${URL_VARIABLE}, else {DEFAULT_URL})")  # fmt: skip
    watch.add_argument("--socket", help="session socket (default: $SHMBRIDGE_SOCKET_PATH, else asked from the service)")
    watch.add_argument("--mode", choices=[policy.value for policy in TransportPolicy],
                       default=TransportPolicy.AUTO.value,
                       help="auto: shared memory when it works, else HTTP (default)")  # fmt: skip
    watch.add_argument("--display", help="X display (default: $DISPLAY)")
    watch.add_argument("--region", type=_region, metavar="x,y,w,h", help="only watch this part of the screen")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between captures (default 1)")
    watch.add_argument("--once", action="store_true", help="read the screen once, print every line, and exit")
    watch.add_argument("--frames", type=int, help="stop after this many captures (default: until interrupted)")
    watch.add_argument("--stream", default="screen", help="name of the screen stream (default: screen)")
    watch.add_argument("--json", action="store_true", help="one JSON object per changed frame")
    watch.add_argument("--language", action="append", dest="languages", help="recognition language (repeatable)")


def frame_json(step: WatchFrame) -> dict[str, Any]:
    result = step.result
    return {
        "frame": step.index,
        "stream": step.stream,
        "capture": step.capture,
        "communication_mode": getattr(result, "communication_mode", None),
        "added": [line_json(line) for line in step.added],
        "removed": [line_json(line) for line in step.removed],
        "lines": len(result.lines),
        # What the service's stream read for this frame (absent without a stream).
        "keyframe": None if result.stream is None else result.stream.keyframe,
        "rects": [] if result.stream is None else [rect.model_dump() for rect in result.stream.rects],
        "warnings": list(step.warnings),
    }


def _print_text(step: WatchFrame) -> None:
    sys.stdout.write(changes_text(step.added, step.removed))
    sys.stdout.flush()


def run_watch(args: argparse.Namespace) -> int:
    from ..client.sync_client import Client

    frames = 1 if args.once else args.frames
    options = {"languages": args.languages} if args.languages else {}
    warned: set[str] = set()
    try:
        with Client(args.url, socket=args.socket, mode=args.mode) as client:
            steps = client.watch(args.interval, region=args.region, display=args.display, stream=args.stream,
                                 frames=frames, **options)  # fmt: skip
            for step in steps:
                for warning in step.warnings:
                    if warning not in warned:
                        warned.add(warning)
                        print(f"shmbridge watch: warning: {warning}", file=sys.stderr)
                if not step.changed:
                    continue
                if args.json:
                    print(json.dumps(frame_json(step), ensure_ascii=False), flush=True)
                else:
                    _print_text(step)
    except KeyboardInterrupt:
        return 0
    except ShmBridgeError as exc:
        print(f"shmbridge watch: {exc.code.name}: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, ServiceUnavailable) else 1
    except UsageError as exc:
        print(f"shmbridge watch: {exc}", file=sys.stderr)
        return 2
    return 0
