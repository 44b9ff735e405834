"""``shmbridge status``: is the service there, and does the path from here to it work?

Owns the command: ``Client.diagnose()`` (URL, socket and where its path came from, peer check, handshake, a
test frame's round trip) printed as a table, then the service's health, modes and key metrics when HTTP
answers; or all of it as JSON with ``--json``. Exit status: 0 all well; 1 the service is not ready, or the
socket the user asked for (``--socket`` or ``SHMBRIDGE_SOCKET_PATH``) does not work; 2 neither HTTP nor
the socket answers. It must never print a traceback for a condition the user can fix.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..client.base import Timeouts, TransportPolicy
from ..client.diagnose import Diagnosis
from ..client.sync_client import Client
from ..errors import ShmBridgeError
from ..models import low_latency_state
from .ocr import url_argument


def add_status(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="test the path to a service and show its health and metrics",
                            description="Test each step from here to a shmbridge service (HTTP, the socket, "
                                        "the peer check, the handshake, a test frame), then its health.")  # fmt: skip
    url_argument(status)
    status.add_argument("--json", action="store_true", help="print the report, health, info and metrics as JSON")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    status.set_defaults(run=run_status)


def exit_status(report: Diagnosis, health: dict[str, Any] | None) -> int:
    if not report.url_reachable and not report.shared_memory:
        return 2
    if report.socket_asked_for and not report.shared_memory:
        return 1
    return 0 if health is None or health.get("ready") else 1


def run_status(args: argparse.Namespace) -> int:
    timeouts = Timeouts(request=args.timeout, connect=args.timeout)
    health = info = metrics = None
    with Client(args.url, socket=args.socket, mode=TransportPolicy.AUTO, timeout=timeouts) as client:
        report = client.diagnose()
        if report.url_reachable:
            try:
                health, info, metrics = client.health(), client.info(), client.metrics()
            except ShmBridgeError as exc:
                print(f"shmbridge status: {client.url}: {exc.code.name}: {exc.message}", file=sys.stderr)
    code = exit_status(report, health)
    if args.json:
        document = {"url": report.url, "diagnosis": report.model_dump(mode="json"), "health": health,
                    "info": info, "metrics": metrics}  # fmt: skip
        print(json.dumps(document, indent=2))
        return code
    _print_path(report)
    if health is not None and info is not None and metrics is not None:
        _print_status(report.url, health, info, metrics)
    elif report.url_error:
        print(f"shmbridge status: {report.url}: SERVICE_UNAVAILABLE: {report.url_error}", file=sys.stderr)
    return code


def _mark(value: bool | None, good: str = "yes", bad: str = "no") -> str:
    if value is None:
        return "[dim]not tried[/]"
    return f"[green]{good}[/]" if value else f"[red]{bad}[/]"


def _print_path(report: Diagnosis) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(100, Console().width), highlight=False)
    table = Table(title="the path from here", show_header=False, title_justify="left")
    table.add_column("step", style="bold")
    table.add_column("result", overflow="fold")
    table.add_row("HTTP " + report.url, _mark(report.url_reachable, "answers", f"no: {report.url_error}"))
    source = {"argument": "--socket", "service": "advertised by the service"}.get(
        report.socket_source or "", report.socket_source or "none"
    )
    table.add_row("socket path", f"{report.socket_path or '-'} ({source})")
    table.add_row("socket reachable", _mark(report.socket_reachable))
    table.add_row("peer accepted", _mark(report.peer_accepted))
    version = f" (protocol {report.protocol_version})" if report.protocol_version is not None else ""
    table.add_row("handshake", _mark(report.handshake, "ok" + version, "failed"))
    trip = f"ok, {report.round_trip_ms:.2f} ms" if report.round_trip_ms is not None else "ok"
    table.add_row("test frame round trip", _mark(report.round_trip, trip, "failed"))
    if report.fallback_reason:
        table.add_row("shared memory", f"[yellow]not used: {report.fallback_reason}[/]")
    else:
        table.add_row("shared memory", "[green]works[/]")
    console.print(table)


def _ms(seconds: Any) -> str:
    return f"{seconds * 1e3:.2f}" if isinstance(seconds, int | float) else "-"


def _low_latency(status: dict[str, Any] | None) -> str:
    """One cell for the service's low-latency mode: off, unavailable (and why), or on and whether held now."""
    state = low_latency_state(status)
    if state == "unknown":
        return "unknown (the service does not report it)"
    if state == "off":
        return "off"
    assert status is not None
    if state == "unavailable":
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
