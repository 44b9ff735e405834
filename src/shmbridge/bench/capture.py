"""``python -m shmbridge.bench.capture``: the screen to the OCR engine, captured in place against ``mss``.

On a private Xvfb (default 1920x1080x24) showing an xterm full of text, and a private service, it times in
one run, in interleaved rounds:

- ``capture``: ``client.capture()``, the X server writing the screen into a slot (MIT-SHM 1.2, a memfd);
- ``capture_copy``: the same with the copying capture (core ``GetImage`` through the X socket);
- ``mss``: ``mss`` grabbing the screen into a buffer of its own (the usual way, for reference);
- ``unchanged, watch``: one ``client.watch`` step of a screen that did not change (capture + digest, no OCR);
- ``unchanged, capture + stream``: ``client.capture()`` + ``client.ocr(capture, stream=...)`` of a screen
  that did not change: the service finds no changed tile and reads nothing;
- ``unchanged, mss + ocr``: what a client without streams or a change gate pays for the same frame: ``mss``
  + ``client.ocr(array)`` (a copy into a slot, then a full OCR);
- ``changed, capture + stream``: after a new line appears, ``client.capture()`` +
  ``client.ocr(capture, stream=...)``: the service reads only what changed;
- ``changed, capture + ocr``: the same change, ``client.capture()`` + a full ``client.ocr(capture)``;
- ``changed, mss + ocr``: the same change, ``mss`` + ``client.ocr(array)``.

Percentiles are nearest-rank (``stats.percentile``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..capture import FORCE_COPY_ENV, Watcher
from .service import own_service
from .stats import percentile
from .xdisplay import missing_tools, xterm_showing, xvfb

#: Lines the xterm starts with: a screen of ordinary text, as an agent's terminal or editor shows.
PAGE = [f"{n:03d} build step {n}: compiled module_{n}.py in {n * 7 % 97} ms, cache hit {n % 3 == 0}" for n in range(40)]


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shmbridge.bench.capture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--engine", default="rapidocr", help="service engine (default rapidocr; null: transport)")
    parser.add_argument("--size", default="1920x1080", help="screen size WxH (default 1920x1080)")
    parser.add_argument("--rounds", type=int, default=200, help="rounds of the capture-only rows (default 200)")
    parser.add_argument("--ocr-rounds", type=int, default=5, help="rounds of the rows that OCR (default 5)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.ocr_rounds < 1:
        parser.error("--rounds and --ocr-rounds must be at least 1")
    if reason := missing_tools("xterm"):
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    try:
        import mss
    except ImportError:
        print("cannot run: mss is missing (pip install 'shmbridge[bench]')", file=sys.stderr)
        return 2
    from ..client.sync_client import Client

    width, height = (int(part) for part in args.size.lower().split("x"))
    samples: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shmb-capture-")))
        text_file = folder / "screen.txt"
        text_file.write_text("\n".join(PAGE) + "\n")
        server = stack.enter_context(xvfb(width, height))
        stack.enter_context(xterm_showing(server, text_file, geometry="120x45+0+0", font_size=14))
        handle = stack.enter_context(own_service(args.engine, workers=1))
        client = stack.enter_context(Client(handle.url, socket=handle.socket_path, mode="shm", timeout=300))
        screenshots = getattr(mss, "MSS", None) or mss.mss  # MSS is the newer name
        grabber = stack.enter_context(screenshots(display=server.display.encode()))
        monitor = grabber.monitors[1]
        time.sleep(1.0)  # let the xterm draw its page

        def mss_array() -> np.ndarray:
            shot = grabber.grab(monitor)
            return np.frombuffer(shot.raw, np.uint8).reshape(shot.height, shot.width, 4)

        def capture_only() -> None:
            with client.capture(display=server.display):
                pass

        def watch_step(watcher: Watcher) -> None:
            with client.capture(display=server.display) as shot:
                if watcher.needs_ocr(shot):
                    watcher.read(shot, client.ocr(shot, **watcher.options({})))
                else:
                    watcher.unchanged(shot)

        def capture_ocr(**stream: object) -> None:
            with client.capture(display=server.display) as shot:
                client.ocr(shot, **stream)

        def capture_stream() -> None:
            capture_ocr(stream="bench")

        watcher = Watcher(0.0, stream="watch")
        watch_step(watcher)  # the first reads of the screen, untimed
        capture_stream()
        for _ in range(args.rounds):
            for name, call in (("capture", capture_only), ("mss", mss_array),
                               ("unchanged, watch", lambda: watch_step(watcher)),
                               ("unchanged, capture + stream", capture_stream)):  # fmt: skip
                samples.setdefault(name, []).append(_timed(call))
        os.environ[FORCE_COPY_ENV] = "1"
        with Client(handle.url, socket=handle.socket_path, mode="shm") as copying:
            for _ in range(max(1, args.rounds // 4)):
                samples.setdefault("capture_copy", []).append(
                    _timed(lambda: copying.capture(display=server.display).__enter__())
                )
        del os.environ[FORCE_COPY_ENV]
        for n in range(args.ocr_rounds):
            samples.setdefault("unchanged, mss + ocr", []).append(
                _timed(lambda: client.ocr(mss_array(), pixel_format="bgra"))
            )
            copied_ocr = lambda: client.ocr(mss_array(), pixel_format="bgra")  # noqa: E731
            for name, call in (("changed, capture + stream", capture_stream), ("changed, capture + ocr", capture_ocr),
                               ("changed, mss + ocr", copied_ocr)):  # fmt: skip
                with text_file.open("a") as appended:
                    appended.write(f"new output {name} {n}: the screen changed\n")
                time.sleep(0.3)  # the xterm draws it (untimed)
                samples.setdefault(name, []).append(_timed(call))
    print(f"shmbridge capture, {args.engine} engine, {width}x{height}x24 Xvfb, {args.rounds} capture rounds, "
          f"{args.ocr_rounds} OCR rounds, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'row':>24} {'n':>5} {'p50 ms':>10} {'p99 ms':>10}")
    for name, values in samples.items():
        ordered = sorted(values)
        print(f"{name:>24} {len(ordered):5d} {percentile(ordered, 0.5) * 1e3:10.2f} "
              f"{percentile(ordered, 0.99) * 1e3:10.2f}")  # fmt: skip
    for mine, theirs in (("capture", "mss"), ("unchanged, watch", "unchanged, mss + ocr"),
                         ("unchanged, capture + stream", "unchanged, mss + ocr"),
                         ("changed, capture + stream", "changed, mss + ocr"),
                         ("changed, capture + ocr", "changed, mss + ocr")):  # fmt: skip
        ratio = percentile(sorted(samples[mine]), 0.5) / percentile(sorted(samples[theirs]), 0.5)
        print(f"{mine} p50 is {ratio:.3f}x {theirs} p50")
    return 0


if __name__ == "__main__":
    sys.exit(main())
