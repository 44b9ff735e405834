"""What a benchmark run measures and for how long: the full matrix, and what ``--quick`` drops.

Full: every path × 300×60, 1280×720, 1920×1080, 3840×2160 × 1, 4 and 16 clients on the null engine
(iceoryx2 at 1 client only), each cell until it has 2000 samples (spread over at least 8 rounds) or 4 s
of measurement (never fewer than 5 samples), then the engine pass: legacy-json, http-raw and shm-frame on
rapidocr at 1920×1080 and 300×60, one client, 10 samples each (at most 45 s a cell, never fewer than 5).

Quick (under a minute on 2 cores): every path and every size still, but 1 and 4 clients only (no 16),
at most 60 samples or 0.25 s a cell, shorter warm-ups, and the engine pass at 300×60 only with 5 samples.
Its p99 rests on few samples: use it to see that everything works and roughly how paths compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .images import SIZES, Size
from .paths import ENGINE_PATHS, PATHS

MIN_SAMPLES = 5


@dataclass(frozen=True)
class Phase:
    """How long each cell of one phase runs. Times are seconds of measurement, warm-ups excluded."""

    target_samples: int
    budget_s: float
    slice_s: float
    max_iter_per_slice: int
    warmup_s: float
    warmup_iters: int
    min_samples: int = MIN_SAMPLES
    #: A cell's target is spread over at least this many slices (rounds), so even a cell that could
    #: collect all its samples in one slice is measured at several moments of the run.
    min_slices: int = 1

    def info(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Settings:
    sizes: tuple[Size, ...] = tuple(SIZES)
    concurrency: tuple[int, ...] = (1, 4, 16)
    paths: tuple[str, ...] = PATHS
    transport: Phase = field(
        default_factory=lambda: Phase(
            target_samples=2000,
            budget_s=4.0,
            slice_s=0.25,
            max_iter_per_slice=100_000,
            warmup_s=0.2,
            warmup_iters=3,
            min_slices=8,
        )
    )
    engine_pass: bool = True
    engine_name: str = "rapidocr"
    engine_sizes: tuple[Size, ...] = (Size.of(1920, 1080), Size.of(300, 60))
    engine_paths: tuple[str, ...] = ENGINE_PATHS
    engine: Phase = field(
        default_factory=lambda: Phase(
            target_samples=10, budget_s=45.0, slice_s=0.0, max_iter_per_slice=1, warmup_s=0.0, warmup_iters=1
        )
    )
    png_level: int = 6
    #: "processes" (default: N client programs) or "threads" (one program, N threads); see worker.py.
    clients: str = "processes"
    quick: bool = False
    #: Start the own services with ``--low-latency`` (idle CPUs poll while sessions are busy).
    low_latency: bool = False
    #: Hard limit on the whole run; cells still short of samples then are reported as truncated.
    max_total_s: float = 3600.0

    def info(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "sizes": [size.label for size in self.sizes],
            "concurrency": list(self.concurrency),
            "paths": list(self.paths),
            "transport_phase": self.transport.info(),
            "engine_pass": self.engine_pass,
            "engine_name": self.engine_name,
            "engine_sizes": [size.label for size in self.engine_sizes],
            "engine_paths": list(self.engine_paths),
            "engine_phase": self.engine.info(),
            "png_compress_level": self.png_level,
            "max_total_s": self.max_total_s,
            "client_model": self.clients,
            "low_latency": self.low_latency,
        }


FULL = Settings()
QUICK = Settings(
    concurrency=(1, 4),
    transport=Phase(
        target_samples=60,
        budget_s=0.25,
        slice_s=0.08,
        max_iter_per_slice=100_000,
        warmup_s=0.02,
        warmup_iters=1,
        min_slices=2,
    ),
    engine_sizes=(Size.of(300, 60),),
    engine=Phase(target_samples=5, budget_s=5.0, slice_s=0.0, max_iter_per_slice=1, warmup_s=0.0, warmup_iters=1),
    quick=True,
    max_total_s=600.0,
)


def customise(base: Settings, **changes: Any) -> Settings:
    """``base`` with the given fields replaced; phase fields go through ``transport_*``/``engine_*`` keys."""
    transport = {k.removeprefix("transport_"): v for k, v in changes.items() if k.startswith("transport_")}
    engine = {k.removeprefix("engine_phase_"): v for k, v in changes.items() if k.startswith("engine_phase_")}
    plain = {k: v for k, v in changes.items() if not k.startswith(("transport_", "engine_phase_"))}
    return replace(
        base,
        transport=replace(base.transport, **transport) if transport else base.transport,
        engine=replace(base.engine, **engine) if engine else base.engine,
        **plain,
    )
