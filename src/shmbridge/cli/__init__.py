"""The ``shmbridge`` command: serve | ocr | status | bench | watch. It only parses flags and builds configs.

``main`` (the ``shmbridge`` entry point, also ``python -m shmbridge``) sets up logging, warns about
``SHMBRIDGE_*`` variables nothing reads, and hands over to the subcommand: ``cli.serve`` for the service,
``cli.ocr`` and ``cli.status`` for the client commands, ``bench.cli`` for ``bench``, ``capture.command``
for ``watch``. Usage errors are one line
(what is wrong, which flag, where to look) with exit status 2; no traceback for anything a person can fix.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from typing import NoReturn

from ..environment import LOG_LEVEL_VARIABLE, warn_unknown_variables

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
DESCRIPTION = """\
shmbridge hands images to a native OCR service through shared memory (HTTP where it cannot).
Run the service with `shmbridge serve`, read images with `shmbridge ocr FILE...`, and check the path
between them with `shmbridge status`. `shmbridge watch` follows an X screen and prints the text that
appears and goes.
"""


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line, naming the command and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see `{self.prog} --help`\n")


def log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return text.lower()


def _add_bench(sub: argparse._SubParsersAction) -> None:
    """``shmbridge bench``: its flags and its run live in ``bench/cli.py`` (imported lazily, stdlib only)."""
    from ..bench import cli as bench_cli

    bench = sub.add_parser("bench", help="measure every transport (HTTP, shared memory) against a service")
    bench_cli.add_arguments(bench)
    bench.set_defaults(run=bench_cli.run)


def _version() -> str:
    from .. import __version__
    from ..wire import VERSION

    return f"shmbridge {__version__} (session protocol {VERSION})"


def build_parser() -> argparse.ArgumentParser:
    from .ocr import add_ocr
    from .serve import add_serve
    from .status import add_status

    parser = OneLineParser(prog="shmbridge", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve(sub)
    add_ocr(sub)
    add_status(sub)
    _add_bench(sub)
    from ..capture.command import add_watch

    add_watch(sub)
    serve = sub.choices["serve"]
    if not any("--log-level" in action.option_strings for action in serve._actions):
        serve.add_argument("--log-level", type=log_level, metavar="LEVEL",
                           help=f"{', '.join(LOG_LEVELS)} (default: info; env {LOG_LEVEL_VARIABLE})")  # fmt: skip
    return parser


def _resolve_log_level(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    given = getattr(args, "log_level", None)
    if given:
        return given
    from_env = os.environ.get(LOG_LEVEL_VARIABLE)
    if from_env and args.command == "serve":
        try:
            return log_level(from_env)
        except argparse.ArgumentTypeError as exc:
            parser.exit(2, f"shmbridge serve: {LOG_LEVEL_VARIABLE}: {exc}\n")
    return "info"


def _one_line_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    return f"shmbridge: {category.__name__}: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=_resolve_log_level(parser, args).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    warnings.formatwarning = _one_line_warning  # a deprecation is one line, not a source excerpt
    warn_unknown_variables()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
