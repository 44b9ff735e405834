"""Turning a report dict into a terminal table, a JSON file and a Markdown page (plots live in ``plots.py``).

The JSON is the report itself (the dict ``suite.run`` returns), written with sorted keys so two runs diff
cleanly. The table and the Markdown show the same rows: latencies in µs, ms or s as they read best,
bytes in B/KiB/MiB, speed-ups as the baseline's p50 over the row's p50 (so 100× means 100 times faster).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..models import low_latency_state

COLUMNS = ("path", "size", "clients", "n", "p50", "p95", "p99", "req/s", "client CPU", "service CPU",
           "copied client+service", "× legacy", "× raw")  # fmt: skip
ENGINE_COLUMNS = ("path", "size", "n", "p50", "p99", "engine p50", "bridge p50", "bridge share", "× legacy")


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms < 1.0:
        return f"{ms * 1e3:.1f} µs"
    if ms < 1000.0:
        return f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"
    return f"{ms / 1e3:.2f} s"


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}×" if value >= 100 else f"{value:.1f}×"


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"


def _copied(row: dict[str, Any]) -> str:
    client, service = row["client_bytes_copied_per_req"], row["service_bytes_copied_per_req"]
    return f"{fmt_bytes(client)} + {fmt_bytes(service)}"


def transport_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["path"] + (" (truncated)" if row["truncated"] else ""),
        row["size"],
        str(row["concurrency"]),
        str(row["samples"]),
        fmt_ms(row["p50_ms"]),
        fmt_ms(row["p95_ms"]),
        fmt_ms(row["p99_ms"]),
        fmt_rate(row["throughput_rps"]),
        fmt_ms(row["client_cpu_ms_per_req"]),
        fmt_ms(row["service_cpu_ms_per_req"]),
        _copied(row),
        fmt_ratio(row["speedup_vs_legacy_json"]),
        fmt_ratio(row["speedup_vs_http_raw"]),
    ]


def engine_cells(row: dict[str, Any]) -> list[str]:
    share = row.get("bridge_share")
    return [
        row["path"],
        row["size"],
        str(row["samples"]),
        fmt_ms(row["p50_ms"]),
        fmt_ms(row["p99_ms"]),
        fmt_ms(row.get("engine_p50_ms")),
        fmt_ms(row.get("bridge_p50_ms")),
        "–" if share is None else f"{share * 100:.1f} %",
        fmt_ratio(row["speedup_vs_legacy_json"]),
    ]


def split(report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(transport rows, engine-pass rows)."""
    transport = [row for row in report["cells"] if row["phase"] == "transport"]
    return transport, [row for row in report["cells"] if row["phase"] == "engine"]


def headline_lines(report: dict[str, Any]) -> list[str]:
    h = report.get("headline", {})
    names = {
        "http_raw_over_shm_frame_1920x1080_c1": "http-raw p50 / shm-frame p50, 1920×1080, 1 client",
        "http_raw_over_shm_copy_1920x1080_c1": "http-raw p50 / shm-copy p50, 1920×1080, 1 client",
        "shm_frame_3840x2160_over_300x60_c1": "shm-frame p50 at 3840×2160 / at 300×60, 1 client",
    }
    lines = []
    for key, label in names.items():
        value = h.get(key)
        shown = "not measured" if value is None else f"{value:.2f}×" if value < 10 else f"{value:.0f}×"
        lines.append(f"{label}: {shown} (target {h.get('targets', {}).get(key, '?')})")
    return lines


def low_latency_status(report: dict[str, Any]) -> dict[str, Any] | None:
    """The measured service's low-latency status as it reported it (``/api/v1/bridge/info``), if known."""
    return (report.get("services", {}).get("transport") or {}).get("low_latency")


def low_latency_active(report: dict[str, Any]) -> bool:
    """True when the measured service had the hold on and able to act, whatever the flags asked for."""
    return low_latency_state(low_latency_status(report)) == "on"


def low_latency_line(report: dict[str, Any]) -> str:
    """Whether the measured service held idle CPUs polling (``--low-latency``), since it moves every figure."""
    reported = low_latency_status(report)
    status = reported or {}
    described = {
        "unknown": "unknown (no HTTP address to ask)",
        "off": "off (the default: idle CPUs halt between requests)",
        "unavailable": f"asked for but unavailable ({status.get('reason')})",
        "on": f"on (idle CPUs poll while sessions are busy, for {status.get('hold_s')} s after the last request)",
    }
    return f"Service low-latency mode: {described[low_latency_state(reported)]}"


# -- terminal ------------------------------------------------------------------------------------------


def print_tables(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    transport, engine = split(report)
    for clients in sorted({r["concurrency"] for r in transport}):
        rows = [r for r in transport if r["concurrency"] == clients]
        table = Table(title=f"{rows[0]['engine']} engine, {clients} client(s)", title_justify="left")
        for column in COLUMNS:
            table.add_column(column, justify="left" if column in ("path", "size") else "right")
        for row in rows:
            table.add_row(*transport_cells(row))
        console.print(table)
    if engine:
        table = Table(title=f"{engine[0]['engine']} engine, 1 client: what the bridge adds", title_justify="left")
        for column in ENGINE_COLUMNS:
            table.add_column(column, justify="left" if column in ("path", "size") else "right")
        for row in engine:
            table.add_row(*engine_cells(row))
        console.print(table)
    for line in [low_latency_line(report), *headline_lines(report)]:
        console.print(line)
    for skip in report.get("skipped", []):
        console.print(f"[yellow]skipped {skip['path']}: {skip['reason']}[/yellow]")


# -- files ----------------------------------------------------------------------------------------------


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def _md_table(columns: Iterable[str], rows: Iterable[list[str]]) -> list[str]:
    columns = list(columns)
    rule = "|".join("---" if column in ("path", "size") else "---:" for column in columns)
    out = ["| " + " | ".join(columns) + " |", f"|{rule}|"]
    out += ["| " + " | ".join(cells) + " |" for cells in rows]
    return out


def markdown(report: dict[str, Any], plots: list[Path] | None = None, relative_to: Path | None = None) -> str:
    """The run as a Markdown section: command, machine, headline, tables, skipped paths, plots."""
    m, settings = report["machine"], report["settings"]
    libs = ", ".join(f"{k} {v}" for k, v in report["libraries"].items() if v)
    memory = f"{m['memory_bytes'] / (1 << 30):.1f} GiB" if m.get("memory_bytes") else "?"
    lines = [
        f"Command: `{report.get('command', 'shmbridge bench')}`",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpu_count']} logical CPUs ({m['cpu_usable']} usable), {memory} RAM, "
        f"Linux {m['kernel']}, Python {m['python']}",
        f"- Load average (1, 5, 15 min) at start: {m.get('load_average')}, at end: {report.get('load_average_after')}",
        f"- Libraries: {libs}",
        f"- Started {report['started_at']}, took {report['duration_s']:.0f} s; frames: {settings['content']}, RGB; "
        f"PNG compress_level {settings['png_compress_level']}",
        f"- {low_latency_line(report)}",
        "",
        "Headline (one run):",
        "",
        *[f"- {line}" for line in headline_lines(report)],
        "",
    ]
    transport, engine = split(report)
    for clients in sorted({r["concurrency"] for r in transport}):
        rows = [r for r in transport if r["concurrency"] == clients]
        lines += [f"#### {rows[0]['engine']} engine, {clients} client(s)", ""]
        lines += [*_md_table(COLUMNS, (transport_cells(r) for r in rows)), ""]
    if engine:
        lines += [f"#### {engine[0]['engine']} engine, 1 client: what the bridge adds", ""]
        lines += [*_md_table(ENGINE_COLUMNS, (engine_cells(r) for r in engine)), ""]
    for skip in report.get("skipped", []):
        lines.append(f"- Skipped **{skip['path']}**: {skip['reason']}")
    if plots:
        lines.append("")
        for plot in plots:
            shown = Path(os.path.relpath(plot.resolve(), relative_to)) if relative_to else plot
            lines.append(f"![{plot.stem}]({shown.as_posix()})")
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(report: dict[str, Any], path: Path, plots: list[Path] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(report, plots, path.parent.resolve()))
