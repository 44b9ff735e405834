"""``shmbridge ocr``: read images through a running service and write what was read.

Owns the command's inputs (files, directories searched recursively for images, globs, ``-`` for stdin),
where the output goes (stdout, ``-o FILE``, or one file per input with ``--output-dir``), the progress bar
(many inputs, on a terminal), ``--draw`` and the exit status: 0 success, 1 an input failed, 2 the service
cannot be reached or the command line is wrong. Warnings (why shared memory was not used, engine notes) go
to stderr, each once, unless the format carries them (JSON). The formats themselves live in ``output``;
this module must never format a result itself, and never print a traceback for what a person can fix.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..client.base import DEFAULT_URL, Timeouts, TransportPolicy
from ..client.sync_client import Client
from ..environment import SOCKET_VARIABLE, URL_VARIABLE
from ..errors import ServiceUnavailable, ShmBridgeError, UsageError
from ..output import FORMATS, Writer, stream_frame_json, stream_frame_text

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
PROGRESS_FROM = 3  # inputs; fewer finish before a bar is worth drawing


@dataclass(frozen=True, slots=True)
class Source:
    """One input: a file, or the bytes read from stdin."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def image(self) -> Path | bytes:
        return self.path if self.path is not None else self.data or b""

    @property
    def stem(self) -> str:
        return self.path.stem if self.path is not None else "stdin"


def url_argument(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(log_level="warning")  # keep httpx's per-request INFO lines out of the output
    parser.add_argument("--url", default=None,
                        help=f"service URL (default: ${URL_VARIABLE}, else {DEFAULT_URL})")  # fmt: skip
    parser.add_argument("--socket", metavar="PATH",
                        help=f"session socket (default: ${SOCKET_VARIABLE}, else the service's)")  # fmt: skip


def add_ocr(sub: argparse._SubParsersAction) -> None:
    ocr = sub.add_parser("ocr", help="OCR images through a running service",
                         description="Read images through a running shmbridge service and write the text, "
                                     "JSON, Tesseract TSV, hOCR or ALTO.")  # fmt: skip
    ocr.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="image file, directory (searched recursively for images), glob, or - for stdin")  # fmt: skip
    url_argument(ocr)
    ocr.add_argument("--mode", choices=[policy.value for policy in TransportPolicy], default=TransportPolicy.AUTO.value,
                     help="auto: shared memory when it works, else HTTP (default)")  # fmt: skip
    ocr.add_argument("--format", choices=sorted(FORMATS), default="text", help="what to write (default: text)")
    ocr.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    where = ocr.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, metavar="FILE", help="write everything to FILE")
    where.add_argument("--output-dir", type=Path, metavar="DIR",
                       help="write one file per input into DIR, named after the input")  # fmt: skip
    ocr.add_argument("--draw", type=Path, metavar="PNG",
                     help="also save the image with each line's box, text and confidence drawn on it "
                          "(several inputs: PNG gets each input's name)")  # fmt: skip
    ocr.add_argument("--roi", metavar="x,y,w,h", help="only read this region (pixels, top-left origin)")
    ocr.add_argument("--language", action="append", dest="languages", help="recognition language (repeatable)")
    ocr.add_argument("--recognition-level", choices=["accurate", "fast"])
    ocr.add_argument("--timeout", type=float, default=30.0, help="seconds per input (default 30)")
    ocr.add_argument("--stream", metavar="NAME",
                     help="read the inputs in order as frames of one screen stream: the service reads only what "
                          "changed since the previous frame, and each frame's added (+) and removed (-) lines are "
                          "printed (--json: one object per frame)")  # fmt: skip
    ocr.set_defaults(run=run_ocr)


def expand_inputs(inputs: list[str], stdin: IO[bytes]) -> tuple[list[Source], list[str]]:
    """The sources the command line names, and one message per argument that names nothing."""
    sources: list[Source] = []
    problems: list[str] = []
    for given in inputs:
        if given == "-":
            sources.append(Source("-", data=stdin.read()))
            continue
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{given}: no images in this directory ({', '.join(sorted(IMAGE_SUFFIXES))})")
            sources.extend(Source(str(p), path=p) for p in found)
        elif not path.exists() and glob.has_magic(given):
            matches = sorted(Path(p) for p in glob.glob(given, recursive=True) if Path(p).is_file())
            if not matches:
                problems.append(f"{given}: no file matches this pattern")
            sources.extend(Source(str(p), path=p) for p in matches)
        else:
            sources.append(Source(given, path=path))  # a missing file fails when it is read, with its name
    return sources, problems


def _draw_path(target: Path, source: Source, many: bool) -> Path:
    return target.with_name(f"{target.stem}-{source.stem}{target.suffix or '.png'}") if many else target


class _Outputs:
    """Where each page goes: one stream (stdout or ``-o``) for all, or one file per input."""

    def __init__(self, args: argparse.Namespace, count: int, software: str) -> None:
        self.format = FORMATS[args.format]
        self.directory: Path | None = args.output_dir
        self.software = software
        self._file: IO[str] | None = None  # -o FILE; None: stdout, looked up at each write (the progress
        self._writer: Writer | None = None  # bar redirects it while it runs)
        self._used: set[str] = set()
        if self.directory is None:
            self._file = open(args.output, "w", encoding="utf-8") if args.output else None  # noqa: SIM115
            self._writer = self.format(many=count > 1, software=software)
            self._put(self._writer.begin())

    def _put(self, text: str) -> None:
        stream = self._file or sys.stdout
        stream.write(text)
        stream.flush()

    def write(self, number: int, source: Source, result: Any) -> None:
        if self._writer is not None:
            self._put(self._writer.page(number, source.name, result))
            return
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        writer = self.format(software=self.software)
        name = source.stem
        while name in self._used:  # two inputs with one stem: a.png and sub/a.png
            name += "_"
        self._used.add(name)
        text = writer.begin() + writer.page(1, source.name, result) + writer.end()
        (self.directory / f"{name}{writer.extension}").write_text(text, encoding="utf-8")

    def close(self) -> None:
        if self._writer is not None:
            self._put(self._writer.end())
        if self._file is not None:
            self._file.close()


@contextlib.contextmanager
def _progress(count: int) -> Iterator[Any]:
    """A rich progress bar on stderr when there are many inputs and stdout is a terminal; else nothing."""
    if count < PROGRESS_FROM or not sys.stdout.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        progress.add_task("reading", total=count)
        yield progress


def run_ocr(args: argparse.Namespace) -> int:
    from .. import __version__

    sources, problems = expand_inputs(args.inputs, sys.stdin.buffer)
    for problem in problems:
        print(f"shmbridge ocr: {problem}", file=sys.stderr)
    if not sources:
        return 1
    options = {"roi": args.roi, "languages": args.languages, "recognition_level": args.recognition_level}
    if args.stream is not None and (args.format not in STREAM_FORMATS or args.output_dir or args.draw):
        print("shmbridge ocr: --stream prints each frame's changes as text or --json (no --output-dir, "
              "--draw or other formats)", file=sys.stderr)  # fmt: skip
        return 2
    failed = len(problems)
    warned: set[str] = set()
    try:
        client = Client(args.url, socket=args.socket, mode=args.mode, timeout=Timeouts(request=args.timeout))
    except (UsageError, ValueError) as exc:
        print(f"shmbridge ocr: {exc}", file=sys.stderr)
        return 2
    # The command prints each result's warnings itself, once; the client's log line would say it twice.
    logging.getLogger("shmbridge.client").setLevel(logging.ERROR)
    outputs: _Outputs | _StreamOutput | None = None
    try:
        outputs = (
            _Outputs(args, len(sources), f"shmbridge {__version__}") if args.stream is None else _StreamOutput(args)
        )
        with client, _progress(len(sources)) as progress, _reader(client, args.stream, options) as read:
            for number, source in enumerate(sources, start=1):
                if progress is not None:
                    progress.update(0, completed=number - 1, description=source.name)
                try:
                    result = read(source.image)
                except ShmBridgeError as exc:
                    failed += 1
                    print(f"shmbridge ocr: {source.name}: {exc.code.name}: {exc.message}", file=sys.stderr)
                    if isinstance(exc, ServiceUnavailable):
                        return 2
                    continue
                outputs.write(number, source, result)
                if args.format != "json":
                    for warning in result.warnings:
                        if warning not in warned:
                            warned.add(warning)
                            print(f"shmbridge ocr: warning: {warning}", file=sys.stderr)
                if args.draw is not None:
                    _draw(args.draw, source, result, len(sources) > 1)
    except UsageError as exc:
        print(f"shmbridge ocr: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable -o, --output-dir or --draw
        print(f"shmbridge ocr: cannot write: {exc}", file=sys.stderr)
        return 2
    finally:
        if outputs is not None:
            outputs.close()
    return 1 if failed else 0


#: What ``--stream`` can print: each frame's changes as text, or as one JSON object per frame.
STREAM_FORMATS = frozenset({"text", "json"})


@contextlib.contextmanager
def _reader(client: Client, stream: str | None, options: dict[str, Any]) -> Iterator[Callable[[Any], Any]]:
    """How each input is read: on its own, or as the next frame of the stream (closed at the end)."""
    if stream is None:
        yield lambda image: client.ocr(image, **options)
        return
    with client.stream(stream, delta=True, **options) as frames:
        yield frames.ocr


class _StreamOutput:
    """``--stream``: each frame's changes, to stdout or ``-o``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._json = args.format == "json"
        self._file: IO[str] | None = open(args.output, "w", encoding="utf-8") if args.output else None  # noqa: SIM115

    def write(self, _number: int, source: Source, result: Any) -> None:
        text = stream_frame_json(source.name, result) if self._json else stream_frame_text(source.name, result)
        target = self._file or sys.stdout
        target.write(text)
        target.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _draw(target: Path, source: Source, result: Any, many: bool) -> None:
    from ..draw import draw

    image = source.path if source.path is not None else (source.data or b"")
    destination = _draw_path(target, source, many)
    draw(os.fspath(image) if isinstance(image, Path) else image, result).save(destination, format="PNG")
