"""``shmbridge serve``: build a ``ServiceConfig`` from flags, variables and a file, run ``Server``.

Owns turning every condition a person can fix (a bad value, an unreadable file, a taken port, a missing
engine) into one line on stderr that says what is wrong, which flag or variable, and what to do, with exit
status 2 (bad configuration) or 1 (could not start). It must never print a traceback for those, and never
run the service itself (``service.server.Server`` does).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from ..config import ServiceConfig
from ..environment import CONFIG_VARIABLE, variable_for
from ..values import SIZE_HINT
from . import serve_flags
from .serve_flags import flag_for, where_to_set

DESCRIPTION = """\
Run the OCR service. Programs on this host send images through shared memory on the Unix socket
(--socket-path); anything else, or another machine, uses HTTP (--http-host, --http-port). Every setting can
be a flag, a SHMBRIDGE_<NAME> variable or a key in a --config file (TOML or JSON); sizes take units (64MiB,
2GiB) and lists are comma-separated (1000,1001).
"""
EXAMPLES = """\
examples:
  shmbridge serve                                   # default engine, HTTP on 127.0.0.1:8080 and the socket
  shmbridge serve --engine tesseract --http-port 9000
  SHMBRIDGE_ALLOWED_UIDS=1000,1001 shmbridge serve --session-bytes 256MiB
"""

_HINTS = {"size": SIZE_HINT, "list": "comma-separated whole numbers, e.g. 1000,1001",
          "dict": "KEY=VALUE pairs, e.g. checksum_mode=full", "bool": "true or false"}  # fmt: skip
_TYPE_HINTS = {int: "a whole number", float: "a number", Path: "a path"}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help lines wrapped at spaces only, so a flag named in a help line (``--engine-option``) stays whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the OCR service (HTTP and shared-memory sessions)",
                           description=DESCRIPTION, epilog=EXAMPLES, formatter_class=_HelpFormatter)  # fmt: skip
    serve.add_argument("--config", type=Path, metavar="FILE",
                       help=f"TOML or JSON file of settings (default: none; env {CONFIG_VARIABLE})")  # fmt: skip
    serve_flags.add_service_flags(serve)
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        given = serve_flags.given_settings(args)
    except serve_flags.FlagValueError as exc:
        return _fail(f"{exc}", status=2)
    if args.config is None and os.environ.get(CONFIG_VARIABLE):
        args.config = Path(os.environ[CONFIG_VARIABLE])
    try:
        config = ServiceConfig.load(args.config, **given)
    except ValidationError as exc:
        for line in explain(exc, lambda field: _origin(field, given, args.config)):
            print(f"shmbridge serve: {line}", file=sys.stderr)
        return 2
    except (SettingsError, OSError, ValueError) as exc:  # unreadable file, bad TOML/JSON
        where = f"the config file {args.config}" if args.config else "the configuration"
        return _fail(f"cannot read {where}: {exc}; fix it or leave --config out", status=2)
    return _run_server(config)


def _run_server(config: ServiceConfig) -> int:
    from ..errors import ShmBridgeError
    from ..service.server import ListenError, Server

    server = Server(config)
    try:
        server.run()
    except ListenError as exc:
        return _fail(_listen_message(exc), status=1)
    except ShmBridgeError as exc:
        return _fail(exc.message, status=1)
    except OSError as exc:
        return _fail(str(exc), status=1)
    if server.engine_hung:  # the interpreter would join the stuck engine thread at exit, forever
        logging.shutdown()
        sys.stderr.flush()
        os._exit(1)
    return 0


def _listen_message(exc: Any) -> str:
    address = f"{exc.host}:{exc.port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"HTTP port {exc.port} is already in use on {exc.host} (another shmbridge?); stop that program, "
                f"or choose another port with {where_to_set('http_port')} (0 picks a free one)")  # fmt: skip
    if exc.errno == errno.EACCES:
        return (f"may not listen on {address} (ports below 1024 need privileges); choose a port above 1023 "
                f"with {where_to_set('http_port')}")  # fmt: skip
    return f"cannot listen on {address}: {exc.strerror}; check {where_to_set('http_host')} and its port"


def _fail(message: str, *, status: int) -> int:
    print(f"shmbridge serve: {message}", file=sys.stderr)
    return status


def _origin(field: str, given: dict[str, Any], config_file: Path | None) -> str:
    if field in given:
        return flag_for(field)
    variable = variable_for(field)
    if any(name.upper() == variable for name in os.environ):
        return variable
    if config_file is not None:
        return f"{field} in {config_file}"
    return f"the default of {field}"


def _hint(field: str) -> str:
    info = ServiceConfig.model_fields[field]
    kind = serve_flags._kind(info)
    if kind in _HINTS:
        return _HINTS[kind]
    return _TYPE_HINTS.get(info.annotation, "a valid value")  # type: ignore[call-overload]


def _flags_in(text: str) -> str:
    """``session_bytes cannot exceed total_bytes`` → with each field name as its flag and variable."""
    names = sorted(ServiceConfig.model_fields, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    return pattern.sub(lambda match: where_to_set(match.group(1)), text)


def explain(exc: ValidationError, origin: Any) -> list[str]:
    """One line per problem: where the value came from, what is wrong, what to set."""
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = error.get("loc") or ()
        if error["type"] == "extra_forbidden":
            lines.append(f"{loc[0] if loc else '?'} is not a setting; `shmbridge serve --help` lists them")
            continue
        field = str(loc[0]) if loc and loc[0] in ServiceConfig.model_fields else None
        if field is None:
            lines.append(_flags_in(message))
            continue
        given = error.get("input")
        shown = f" {given!r}" if isinstance(given, str | int | float) else ""
        lines.append(f"{origin(field)}{shown}: {message}; give {_hint(field)} with {where_to_set(field)}")
    return lines
