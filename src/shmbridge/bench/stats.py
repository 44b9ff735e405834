"""One cell of the matrix (engine × path × size × clients): its samples, and what they add up to.

Definitions, as the report states them:

- latency percentiles are nearest-rank over every measured request of every client (warm-ups excluded);
- throughput is requests / wall time, summed over the cell's slices, where a slice's wall time runs from
  the first client's start to the last client's end;
- client CPU is the clients' ``process_time`` over their slices; service CPU is the service process's CPU
  over the same slices (``probes.ProcessCpu``), both divided by the requests sent in those slices (the
  measured ones and, for fast cells, the few each slice sends first to re-warm and does not time);
- bytes copied per request = the pixel bytes the client copied or produced by encoding (``paths``) + the
  service's ``shmbridge_bytes_copied_total`` delta for the path's mode over the cell's slices / requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..stats import percentile as percentile  # the benchmarks' import of the one definition
from .images import Size


@dataclass
class Cell:
    engine: str
    path: str
    size: Size
    concurrency: int
    phase: str = "transport"
    latencies: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    requests: int = 0
    #: Requests whose CPU and copies were counted: the measured ones plus each slice's re-warm-up ones.
    cpu_requests: int = 0
    #: Requests dropped at the start of each slice (set after the warm-up, for fast cells only).
    discard: int = 0
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    service_cpu_s: float | None = 0.0
    service_copied: float | None = 0.0
    client_copied: int = 0
    wire: int = 0
    slices: int = 0
    warmed: bool = False
    truncated: bool = False

    @property
    def key(self) -> tuple[str, str, Size, int]:
        return (self.engine, self.path, self.size, self.concurrency)

    @property
    def label(self) -> str:
        return f"{self.engine} {self.path} {self.size.label} ×{self.concurrency}"

    def add(self, results: list[dict[str, Any]], service_cpu_s: float | None, service_copied: float | None) -> None:
        """Fold one measured slice (the results of every client) into the cell."""
        for result in results:
            self.latencies.extend(result["latencies"])
            self.engine_ms.extend(result["engine_ms"])
            self.requests += len(result["latencies"])
            self.cpu_requests += len(result["latencies"]) + result.get("discarded", 0)
            self.client_cpu_s += result["cpu_s"]
            self.client_copied, self.wire = result["copied"], result["wire"]
        self.wall_s += max(r["end"] for r in results) - min(r["start"] for r in results)
        self.service_cpu_s = None if service_cpu_s is None or self.service_cpu_s is None else (
            self.service_cpu_s + service_cpu_s)  # fmt: skip
        self.service_copied = None if service_copied is None or self.service_copied is None else (
            self.service_copied + service_copied)  # fmt: skip
        self.slices += 1

    def done(self, target: int, budget_s: float, min_samples: int) -> bool:
        samples = len(self.latencies)
        return samples >= target or (self.wall_s >= budget_s and samples >= min_samples)

    def summary(self) -> dict[str, Any]:
        """The cell's numbers for the report (latencies in milliseconds)."""
        ordered = sorted(self.latencies)
        n = self.requests
        per = max(n, self.cpu_requests)  # CPU and copies were spent on the re-warm-up requests too
        service_copied = None if self.service_copied is None else self.service_copied / per
        out: dict[str, Any] = {
            "engine": self.engine,
            "path": self.path,
            "size": self.size.label,
            "width": self.size.width,
            "height": self.size.height,
            "frame_bytes": self.size.nbytes,
            "concurrency": self.concurrency,
            "phase": self.phase,
            "samples": len(ordered),
            "slices": self.slices,
            "discarded_per_slice": self.discard,
            "truncated": self.truncated,
            "p50_ms": percentile(ordered, 0.50) * 1e3,
            "p95_ms": percentile(ordered, 0.95) * 1e3,
            "p99_ms": percentile(ordered, 0.99) * 1e3,
            "mean_ms": sum(ordered) / len(ordered) * 1e3,
            "min_ms": ordered[0] * 1e3,
            "throughput_rps": n / self.wall_s if self.wall_s > 0 else None,
            "client_cpu_ms_per_req": self.client_cpu_s / per * 1e3,
            "service_cpu_ms_per_req": None if self.service_cpu_s is None else self.service_cpu_s / per * 1e3,
            "client_bytes_copied_per_req": self.client_copied,
            "service_bytes_copied_per_req": service_copied,
            "bytes_copied_per_req": self.client_copied + (service_copied or 0.0),
            "wire_bytes_per_req": self.wire,
        }
        if self.phase == "engine" and self.engine_ms:
            engine_p50 = percentile(sorted(self.engine_ms), 0.5)
            out["engine_p50_ms"] = engine_p50
            out["bridge_p50_ms"] = max(0.0, out["p50_ms"] - engine_p50)
            out["bridge_share"] = out["bridge_p50_ms"] / out["p50_ms"] if out["p50_ms"] > 0 else None
        return out


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """``speedup_vs_legacy_json`` and ``speedup_vs_http_raw``: the baseline's p50 over the row's p50,
    for the same engine, size and number of clients (``None`` where the baseline was not measured)."""
    p50 = {(r["engine"], r["path"], r["size"], r["concurrency"]): r["p50_ms"] for r in rows}
    for row in rows:
        for base, key in (("legacy-json", "speedup_vs_legacy_json"), ("http-raw", "speedup_vs_http_raw")):
            baseline = p50.get((row["engine"], base, row["size"], row["concurrency"]))
            row[key] = baseline / row["p50_ms"] if baseline and row["p50_ms"] > 0 else None


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The three ratios the project tracks, from the null-engine cells of this run (``None`` if missing)."""
    p50 = {(r["path"], r["size"], r["concurrency"]): r["p50_ms"] for r in rows if r["engine"] == "null"}

    def ratio(a: tuple[str, str, int], b: tuple[str, str, int]) -> float | None:
        return p50[a] / p50[b] if a in p50 and b in p50 and p50[b] > 0 else None

    return {
        "http_raw_over_shm_frame_1920x1080_c1": ratio(("http-raw", "1920x1080", 1), ("shm-frame", "1920x1080", 1)),
        "http_raw_over_shm_copy_1920x1080_c1": ratio(("http-raw", "1920x1080", 1), ("shm-copy", "1920x1080", 1)),
        "shm_frame_3840x2160_over_300x60_c1": ratio(("shm-frame", "3840x2160", 1), ("shm-frame", "300x60", 1)),
        "targets": {
            "http_raw_over_shm_frame_1920x1080_c1": ">= 100",
            "http_raw_over_shm_copy_1920x1080_c1": ">= 20",
            "shm_frame_3840x2160_over_300x60_c1": "<= 1.5",
        },
    }
