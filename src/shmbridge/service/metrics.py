"""Prometheus metrics and the same figures as JSON, one instance per service.

Each ``Metrics`` owns its own ``CollectorRegistry`` so several services (tests, benchmarks) can live in
one process without clashing. The JSON view adds p50/p95/p99 from a bounded window of recent latencies,
which Prometheus histograms cannot give exactly.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Transport modes as they appear in labels.
MODES = ("shm_session", "shm_region", "http_raw", "http_image", "legacy")
_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_WINDOW = 2048


class LatencyWindow:
    """The last ``size`` latencies of one series, for percentiles."""

    def __init__(self, size: int = _WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(value)

    def percentiles(self) -> dict[str, float | int]:
        with self._lock:
            values = sorted(self._values)
        if not values:
            return {"count": 0}

        def pick(q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))]

        return {"count": len(values), "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


class Metrics:
    """Every counter the service keeps. Latencies are in seconds (Prometheus convention)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "shmbridge_requests", "OCR requests by transport mode and outcome", ["mode", "outcome"], registry=reg
        )
        self.queue_seconds = Histogram(
            "shmbridge_queue_seconds", "Time waiting for admission", ["mode"], buckets=_BUCKETS, registry=reg
        )
        self.engine_seconds = Histogram(
            "shmbridge_engine_seconds", "Time inside the OCR engine", ["mode"], buckets=_BUCKETS, registry=reg
        )
        self.total_seconds = Histogram(
            "shmbridge_request_seconds", "Service-side time per request", ["mode"], buckets=_BUCKETS, registry=reg
        )
        self.bytes_received = Counter(
            "shmbridge_bytes_received", "Pixel bytes handed to the service", ["mode"], registry=reg
        )
        self.bytes_copied = Counter(
            "shmbridge_bytes_copied", "Pixel bytes the service copied or converted", ["mode"], registry=reg
        )
        self.zero_copy = Counter(
            "shmbridge_zero_copy_requests", "Requests whose pixels were never copied", ["mode"], registry=reg
        )
        self.fallbacks = Counter(
            "shmbridge_fallbacks", "HTTP requests a client marked as a shared-memory fallback", registry=reg
        )
        self.in_flight = Gauge("shmbridge_in_flight", "Requests admitted and not finished", registry=reg)
        self.queued = Gauge("shmbridge_queued", "Requests waiting for admission", registry=reg)
        self.sessions = Gauge("shmbridge_sessions", "Open shared-memory sessions", registry=reg)
        self.slots_in_use = Gauge("shmbridge_slots_in_use", "Slots lent to the service right now", registry=reg)
        self.bytes_mapped = Gauge("shmbridge_bytes_mapped", "Shared-memory bytes mapped", registry=reg)
        self.regions = Gauge("shmbridge_regions", "Registered named shared regions", registry=reg)
        self.windows: dict[str, LatencyWindow] = {mode: LatencyWindow() for mode in MODES}
        self._zero_copy_ratio = Gauge(
            "shmbridge_zero_copy_ratio", "Share of requests served without copying pixels", registry=reg
        )
        self._zero_copy_ratio.set_function(self.zero_copy_ratio)
        # Label lookups cost microseconds each: resolve every mode's children once.
        self._per_mode = {mode: self._children(mode) for mode in MODES}

    def _children(self, mode: str) -> tuple[Any, ...]:
        if mode not in self.windows:
            raise ValueError(f"unknown transport mode {mode!r}; one of {MODES}")
        return (
            self.queue_seconds.labels(mode),
            self.engine_seconds.labels(mode),
            self.total_seconds.labels(mode),
            self.bytes_received.labels(mode),
            self.bytes_copied.labels(mode),
            self.zero_copy.labels(mode),
            self.requests.labels(mode, "ok"),
        )

    def check_mode(self, mode: str) -> None:
        """Raise ``ValueError`` for a mode label that is not one of ``MODES`` (a bug in a transport)."""
        if mode not in self._per_mode:
            self._children(mode)

    def observe(
        self,
        mode: str,
        outcome: str,
        *,
        queue_s: float = 0.0,
        engine_s: float = 0.0,
        total_s: float = 0.0,
        received: int = 0,
        copied: int = 0,
    ) -> None:
        """Record one finished request."""
        if outcome != "ok":
            self.requests.labels(mode, outcome).inc()
            return
        queue_h, engine_h, total_h, received_c, copied_c, zero_copy_c, ok_c = self._per_mode[mode]
        ok_c.inc()
        queue_h.observe(queue_s)
        engine_h.observe(engine_s)
        total_h.observe(total_s)
        received_c.inc(received)
        if copied:
            copied_c.inc(copied)
        else:
            zero_copy_c.inc()
        self.windows[mode].add(total_s)

    def counter_total(self, counter: Counter, **labels: str) -> float:
        """Sum of a counter's samples whose labels match ``labels``."""
        total = 0.0
        for metric in counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def zero_copy_ratio(self) -> float:
        ok = self.counter_total(self.requests, outcome="ok")
        return self.counter_total(self.zero_copy) / ok if ok else 0.0

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)
