"""The ``shmbridge`` command: serve | ocr | status | bench | watch. It only parses flags and builds configs."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError


def _engine_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"engine options are KEY=VALUE, not {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the OCR service (HTTP and shared-memory sessions)")
    serve.add_argument("--config", type=Path, help="TOML or JSON config file")
    serve.add_argument("--engine", help="rapidocr (Linux default), tesseract, vision (macOS default), null")
    serve.add_argument("--engine-option", action="append", type=_engine_option, default=[], metavar="KEY=VALUE",
                       help="engine-specific option, e.g. checksum_mode=full for null")  # fmt: skip
    serve.add_argument("--workers", dest="engine_workers", type=int, help="engine threads (and instances)")
    serve.add_argument("--socket", dest="socket_path", type=Path, help="Unix socket for shared-memory sessions")
    serve.add_argument("--host", dest="http_host", help="HTTP host (default 127.0.0.1)")
    serve.add_argument("--port", dest="http_port", type=int, help="HTTP port (default 8080; 0 picks one)")
    serve.add_argument("--no-http", dest="http_enabled", action="store_false", default=None)
    serve.add_argument("--no-shm", dest="shm_enabled", action="store_false", default=None)
    serve.add_argument("--region-dir", type=Path, help="directory for HTTP-registered shared regions")
    serve.add_argument("--allow-uid", dest="allowed_uids", type=int, action="append", help="peer uid allowed")
    serve.add_argument("--allow-gid", dest="allowed_gids", type=int, action="append", help="peer gid allowed")
    serve.add_argument("--max-sessions", type=int)
    serve.add_argument("--session-bytes", type=int)
    serve.add_argument("--total-bytes", type=int)
    serve.add_argument("--max-frame-bytes", type=int)
    serve.add_argument("--max-pixels", type=int, help="largest frame in pixels (width x height)")
    serve.add_argument("--max-regions-per-client", type=int, help="HTTP shared-memory regions one client may hold")
    serve.add_argument("--max-region-bytes", type=int, help="bytes over all HTTP shared-memory regions")
    serve.add_argument("--max-in-flight", type=int)
    serve.add_argument("--queue-size", type=int)
    serve.add_argument("--request-timeout", type=float)
    serve.add_argument("--engine-timeout", type=float)
    serve.add_argument("--drain-timeout", type=float)
    serve.add_argument("--no-warm-up", dest="warm_up", action="store_false", default=None)
    serve.add_argument("--low-latency", action="store_true", default=None,
                       help="keep idle CPUs polling while sessions are busy (needs /dev/cpu_dma_latency)")  # fmt: skip
    serve.add_argument("--low-latency-hold", type=float, help="seconds the low-latency hold lasts after a request")
    serve.add_argument("--log-level", default="info")


def _serve(args: argparse.Namespace) -> int:
    from .config import ServiceConfig
    from .service.server import Server

    overrides = {k: v for k, v in vars(args).items() if k not in {"command", "config", "log_level", "engine_option"}}
    if args.engine_option:
        overrides["engine_options"] = dict(args.engine_option)
    try:
        config = ServiceConfig.load(args.config, **overrides)
    except ValidationError as exc:
        print(f"shmbridge serve: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except (SettingsError, OSError, ValueError) as exc:  # unreadable file, bad TOML/JSON, bad env JSON
        print(f"shmbridge serve: cannot read the configuration: {exc}", file=sys.stderr)
        return 2
    from .errors import ShmBridgeError

    server = Server(config)
    try:
        server.run()
    except ShmBridgeError as exc:
        print(f"shmbridge serve: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the HTTP port is taken
        print(f"shmbridge serve: {exc}", file=sys.stderr)
        return 1
    if server.engine_hung:  # the interpreter would join the stuck engine thread at exit, forever
        logging.shutdown()
        sys.stderr.flush()
        os._exit(1)
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    """``shmbridge bench``: its flags and its run live in ``bench/cli.py`` (imported lazily, stdlib only)."""
    from .bench import cli as bench_cli

    bench = sub.add_parser("bench", help="measure every transport (HTTP, shared memory) against a service")
    bench_cli.add_arguments(bench)
    bench.set_defaults(run=bench_cli.run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shmbridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    from .client import commands

    commands.add_ocr(sub)
    commands.add_status(sub)
    _add_bench(sub)
    from .capture import command as capture_command

    capture_command.add_watch(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "serve":
        return _serve(args)
    if args.command in ("ocr", "status"):
        from .client import commands

        return commands.run_ocr(args) if args.command == "ocr" else commands.run_status(args)
    if args.command in ("bench", "watch"):
        return args.run(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
