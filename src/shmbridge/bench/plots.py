"""PNG plots of a report (matplotlib, Agg backend: no display needed).

- ``latency_vs_size.png``: p50 latency against frame size on log-log axes, one line per path, one panel
  per number of clients; the p95 band is shaded so the tails are visible too;
- ``throughput_vs_concurrency.png``: requests per second against clients, one line per path, one panel
  per frame size (log y: the paths differ by orders of magnitude).

Transport-phase rows only; matplotlib is imported here and nowhere else (it is in the ``bench`` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import low_latency_active

PATH_STYLE = {
    "legacy-json": ("#d62728", "o"),
    "http-png": ("#ff7f0e", "s"),
    "http-raw": ("#8c564b", "^"),
    "shm-region": ("#9467bd", "v"),
    "shm-copy": ("#1f77b4", "D"),
    "shm-frame": ("#2ca02c", "*"),
    "iceoryx2": ("#7f7f7f", "x"),
}


def available() -> str | None:
    """Why plots cannot be drawn, or ``None``."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed; install the bench extra: pip install 'shmbridge[bench]'"
    return None


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in report["cells"] if row["phase"] == "transport"]


def write_plots(report: dict[str, Any], directory: Path) -> list[Path]:
    """Draw both plots into ``directory``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    rows = _rows(report)
    written = []
    if rows:
        written.append(_latency_vs_size(plt, rows, directory / "latency_vs_size.png", report))
        written.append(_throughput_vs_concurrency(plt, rows, directory / "throughput_vs_concurrency.png", report))
    return written


def _legend(fig: Any, axes: Any) -> None:
    """One legend under the panels with every path drawn anywhere (iceoryx2 appears at 1 client only)."""
    seen: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=len(seen), fontsize=8, frameon=False)


def _subtitle(report: dict[str, Any]) -> str:
    m = report["machine"]
    held = "; service --low-latency" if low_latency_active(report) else ""
    return f"{m['cpu_model']}, {m['cpu_count']} CPUs; null engine{held}; p50 (line) and p95 (band)"


def _latency_vs_size(plt: Any, rows: list[dict[str, Any]], out: Path, report: dict[str, Any]) -> Path:
    clients = sorted({row["concurrency"] for row in rows})
    fig, axes = plt.subplots(1, len(clients), figsize=(5.2 * len(clients), 4.6), sharey=True, squeeze=False)
    for ax, count in zip(axes[0], clients, strict=True):
        for path, (colour, marker) in PATH_STYLE.items():
            points = sorted((r["width"] * r["height"], r["p50_ms"], r["p95_ms"]) for r in rows
                            if r["path"] == path and r["concurrency"] == count)  # fmt: skip
            if not points:
                continue
            xs = [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], marker=marker, color=colour, label=path)
            ax.fill_between(xs, [p[1] for p in points], [p[2] for p in points], color=colour, alpha=0.12)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{count} client{'s' if count > 1 else ''}")
        ax.set_xlabel("frame size (pixels, RGB)")
        ax.grid(True, which="both", alpha=0.3)
        sizes = sorted({(r["width"] * r["height"], r["size"]) for r in rows})
        ax.set_xticks([s[0] for s in sizes], [s[1] for s in sizes], rotation=20, fontsize=8)
        ax.minorticks_off()
    axes[0][0].set_ylabel("latency per request (ms)")
    _legend(fig, axes)
    fig.suptitle(f"Latency vs frame size — {_subtitle(report)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _throughput_vs_concurrency(plt: Any, rows: list[dict[str, Any]], out: Path, report: dict[str, Any]) -> Path:
    sizes = sorted({(r["width"] * r["height"], r["size"]) for r in rows})
    columns = min(2, len(sizes))
    lines = -(-len(sizes) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(5.6 * columns, 4.0 * lines), squeeze=False)
    for index, (_, label) in enumerate(sizes):
        ax = axes[index // columns][index % columns]
        for path, (colour, marker) in PATH_STYLE.items():
            points = sorted((r["concurrency"], r["throughput_rps"]) for r in rows
                            if r["path"] == path and r["size"] == label and r["throughput_rps"])  # fmt: skip
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, color=colour, label=path)
        ax.set_yscale("log")
        ax.set_xscale("log", base=2)
        counts = sorted({r["concurrency"] for r in rows})
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.minorticks_off()
        ax.set_title(label)
        ax.set_xlabel("concurrent clients (processes)")
        ax.set_ylabel("requests per second")
        ax.grid(True, which="both", alpha=0.3)
    for extra in range(len(sizes), lines * columns):
        axes[extra // columns][extra % columns].axis("off")
    _legend(fig, axes)
    fig.suptitle(f"Throughput vs clients — {report['machine']['cpu_count']} CPUs, null engine", fontsize=10)
    fig.tight_layout(rect=(0, 0.07 / lines, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
