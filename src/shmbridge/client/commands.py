"""The client side of the ``shmbridge`` command: ``ocr`` and ``status``. ``cli.py`` registers them.

Each command builds a ``Client``, prints for humans (or JSON with ``--json``) and turns typed errors into a
one-line message and an exit status; no traceback reaches the terminal for a condition the user can fix.
Exit status: 0 success, 1 a file failed or the service is not ready, 2 the service cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ServiceUnavailable, ShmBridgeError, UsageError
from ..models import low_latency_mode
from .base import DEFAULT_URL, ClientResult, Mode, Timeouts
from .sync_client import Client

URL_ENV = "SHMBRIDGE_URL"


def _url_arg(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(log_level="warning")  # keep httpx's per-request INFO lines out of the output
    parser.add_argument("--url", default=os.environ.get(URL_ENV, DEFAULT_URL),
                        help=f"service URL (default: ${URL_ENV}, else {DEFAULT_URL})")  # fmt: skip


def add_ocr(sub: argparse._SubParsersAction) -> None:
    ocr = sub.add_parser("ocr", help="OCR image files through a running service")
    ocr.add_argument("files", nargs="+", type=Path, metavar="FILE", help="PNG, JPEG, WebP, BMP, TIFF or GIF")
    _url_arg(ocr)
    ocr.add_argument("--socket", help="session socket (default: $SHMBRIDGE_SOCKET, else asked from the service)")
    ocr.add_argument("--mode", choices=[mode.value for mode in Mode], default=Mode.AUTO.value,
                     help="auto: shared memory when it works, else HTTP (default)")  # fmt: skip
    ocr.add_argument("--json", action="store_true", help="one JSON result per line instead of the text")
    ocr.add_argument("--roi", metavar="x,y,w,h", help="only read this region (pixels, top-left origin)")
    ocr.add_argument("--language", action="append", dest="languages", help="recognition language (repeatable)")
    ocr.add_argument("--recognition-level", choices=["accurate", "fast"])
    ocr.add_argument("--timeout", type=float, default=30.0, help="seconds per file (default 30)")


def add_status(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="show a service's health, modes and key metrics")
    _url_arg(status)
    status.add_argument("--json", action="store_true", help="print health, info and metrics as JSON")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")


def result_json(path: Path, result: ClientResult) -> dict[str, Any]:
    return {"file": str(path), **result.model_dump(mode="json"), "processing_time_ms": result.processing_time_ms}


def run_ocr(args: argparse.Namespace) -> int:
    failed = 0
    options = {"roi": args.roi, "languages": args.languages, "recognition_level": args.recognition_level}
    try:
        with Client(args.url, socket=args.socket, mode=args.mode, timeout=Timeouts(request=args.timeout)) as client:
            for path in args.files:
                try:
                    result = client.ocr(path, **options)
                except ShmBridgeError as exc:
                    failed += 1
                    print(f"shmbridge ocr: {path}: {exc.code.name}: {exc.message}", file=sys.stderr)
                    if isinstance(exc, ServiceUnavailable):
                        return 2
                    continue
                if args.json:
                    print(json.dumps(result_json(path, result), ensure_ascii=False), flush=True)
                else:
                    if len(args.files) > 1:
                        print(f"==> {path} <==")
                    print(result.text, flush=True)
    except UsageError as exc:
        print(f"shmbridge ocr: {exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0


def run_status(args: argparse.Namespace) -> int:
    with Client(args.url, mode=Mode.HTTP, timeout=Timeouts(request=args.timeout, connect=args.timeout)) as client:
        try:
            health = client.health()
            info = client.info()
            metrics = client.metrics()
        except ShmBridgeError as exc:
            print(f"shmbridge status: {args.url}: {exc.code.name}: {exc.message}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps({"url": args.url, "health": health, "info": info, "metrics": metrics}, indent=2))
    else:
        _print_status(args.url, health, info, metrics)
    return 0 if health.get("ready") else 1


def _ms(seconds: Any) -> str:
    return f"{seconds * 1e3:.2f}" if isinstance(seconds, int | float) else "-"


def _low_latency(status: dict[str, Any] | None) -> str:
    """One cell for the service's low-latency mode: off, unavailable (and why), or on and whether held now."""
    mode = low_latency_mode(status)
    if mode == "unknown":
        return "unknown (the service does not report it)"
    if mode == "off":
        return "off"
    assert status is not None
    if mode == "unavailable":
        return f"[yellow]asked for, unavailable: {status.get('reason')}[/]"
    held = "holding idle CPUs polling now" if status.get("held") else "idle CPUs free (no busy session)"
    return f"on, {held}; {status.get('engagements', 0)} burst(s) so far"


def _print_status(url: str, health: dict[str, Any], info: dict[str, Any], metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width), highlight=False)
    service = Table(title=f"shmbridge at {url}", show_header=False, title_justify="left")
    service.add_column("what", style="bold")
    service.add_column("value", overflow="fold")
    ready = bool(health.get("ready"))
    service.add_row("status", f"[green]{health.get('status')}[/]" if ready else f"[red]{health.get('status')}[/]")
    engine = info.get("engine") or {}
    service.add_row("engine", f"{health.get('engine', engine.get('name', '?'))} ({engine.get('workers', '?')} workers)")
    service.add_row("version", f"{health.get('version', '?')} (protocol {info.get('protocol_version', '?')})")
    service.add_row("uptime", f"{health.get('uptime_s', 0):.0f} s")
    modes = info.get("modes") or {}
    service.add_row("modes", ", ".join(f"{name} {'on' if on else 'off'}" for name, on in modes.items()))
    service.add_row("socket", str(info.get("socket_path") or "-"))
    service.add_row("low-latency mode", _low_latency(info.get("low_latency")))
    service.add_row("in flight / queued", f"{health.get('in_flight', 0)} / {health.get('queued', 0)}")
    service.add_row(
        "sessions / slots in use", f"{metrics.get('sessions', 0):.0f} / {metrics.get('slots_in_use', 0):.0f}"
    )
    service.add_row("zero-copy ratio", f"{metrics.get('zero_copy_ratio', 0.0):.1%}")
    service.add_row("fallbacks", f"{metrics.get('fallbacks', 0):.0f} ({metrics.get('fallback_ratio', 0.0):.1%})")
    if health.get("last_error"):
        service.add_row("last error", f"[red]{health['last_error']}[/]")
    console.print(service)

    traffic = Table(title="requests by mode", title_justify="left")
    for column in ("mode", "ok", "errors", "p50 ms", "p95 ms", "p99 ms", "bytes received", "bytes copied"):
        traffic.add_column(column, justify="left" if column == "mode" else "right")
    requests: dict[str, dict[str, float]] = metrics.get("requests") or {}
    latency: dict[str, dict[str, float]] = metrics.get("latency_seconds") or {}
    for mode in sorted(requests):
        outcomes = requests[mode]
        if not sum(outcomes.values()):
            continue
        window = latency.get(mode, {})
        traffic.add_row(
            mode,
            f"{outcomes.get('ok', 0):.0f}",
            f"{sum(v for k, v in outcomes.items() if k != 'ok'):.0f}",
            _ms(window.get("p50")),
            _ms(window.get("p95")),
            _ms(window.get("p99")),
            f"{(metrics.get('bytes_received') or {}).get(mode, 0):.0f}",
            f"{(metrics.get('bytes_copied') or {}).get(mode, 0):.0f}",
        )
    if not traffic.row_count:
        traffic.add_row("(none yet)", "0", "0", "-", "-", "-", "0", "0")
    console.print(traffic)
