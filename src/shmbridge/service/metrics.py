"""Prometheus metrics and the same figures as JSON, one instance per service.

Each ``Metrics`` owns its own ``CollectorRegistry`` so several services (tests, benchmarks) can live in
one process without clashing. The JSON view adds p50/p95/p99 from a bounded window of recent latencies,
which Prometheus histograms cannot give exactly.

Per-request figures (request counts, bytes, latency histograms, fallbacks) are plain integers and lists
that ``observe`` bumps; a custom collector turns them into Prometheus families only when ``/metrics`` is
scraped. ``prometheus_client``'s own Counter and Histogram cost several times as much per call (locks, a
Python loop over the buckets), which on the shared-memory path was a sizeable part of the whole round
trip (docs/benchmarks.md, "Figures behind the code's choices"). ``observe`` runs on the event loop and on
session threads, so it takes one uncontended lock; readers copy the request counts before they walk
them. Gauges that
change rarely stay ``prometheus_client`` objects.

``shmbridge_request_seconds`` is labelled by mode and outcome (``ok`` or the error code in lower case) and
counts every request that reached ``ServiceCore``; requests refused before it (a bad body, an undecodable
image) are counted in ``shmbridge_requests_total`` only. Queue and engine times are of successful requests.
The registry also carries the standard ``process_*`` and ``python_*`` collectors, and no series ends in
``_created``: every counter is rendered here, and ``prometheus_client`` adds that series to its own
``Counter`` objects only (switching it off there is process-wide).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..stats import percentile

if TYPE_CHECKING:
    from ..models import StreamInfo

#: Transport modes as they appear in labels: the door and body a request came by. On the service side
#: "mode" means this label and nothing else (``ServiceCore.process(mode=...)``, the ``mode`` label).
MODES = ("shm_session", "shm_region", "http_raw", "http_image", "legacy")
_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_WINDOW = 2048
#: name, help, for the latency histograms of successful requests by mode (the order ``observe`` takes them in).
_HISTOGRAMS = (
    ("shmbridge_queue_seconds", "Time waiting for admission"),
    ("shmbridge_engine_seconds", "Time inside the OCR engine"),
)
#: Bounds of the changed-area histogram: the fraction of a stream's frame read again.
_AREA_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_REQUEST_HISTOGRAM = ("shmbridge_request_seconds", "Service-side time per request, by transport mode and outcome")


def percentiles(ordered: list[float]) -> dict[str, float | int]:
    """p50, p95 and p99 of ``ordered`` (sorted), and how many values there were."""
    if not ordered:
        return {"count": 0}

    pick = percentile
    return {"count": len(ordered), "p50": pick(ordered, 0.50), "p95": pick(ordered, 0.95), "p99": pick(ordered, 0.99)}


class _Histogram:
    """Bucket counts (non-cumulative, last one is +Inf) and the sum, for one mode."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = _BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        out = []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class _ModeSeries:
    """Everything counted per transport mode on the hot path."""

    __slots__ = ("copied", "histograms", "received", "window", "zero_copy")

    def __init__(self) -> None:
        self.received = 0
        self.copied = 0
        self.zero_copy = 0
        self.histograms = (_Histogram(), _Histogram())
        self.window: deque[float] = deque(maxlen=_WINDOW)  # the last total latencies, for percentiles


class StreamCounts:
    """What screen streams did, frame by frame: plain counts under ``Metrics._lock``."""

    __slots__ = ("area", "frames", "keyframes", "lines")

    def __init__(self) -> None:
        self.frames = 0
        self.keyframes: dict[str, int] = {}  # reason -> frames read whole
        self.lines = {"reused": 0, "read": 0, "new": 0, "removed": 0}
        self.area = _Histogram(_AREA_BUCKETS)

    def observe(self, info: StreamInfo) -> None:
        self.frames += 1
        if info.keyframe:
            reason = info.reason or "requested"
            self.keyframes[reason] = self.keyframes.get(reason, 0) + 1
        lines = self.lines
        lines["reused"] += info.reused_lines
        lines["read"] += info.read_lines
        lines["new"] += info.new_lines
        lines["removed"] += info.removed_lines
        self.area.observe(info.changed_tiles / info.tiles if info.tiles else 0.0)

    def snapshot(self) -> dict[str, object]:
        """The JSON view's ``streams`` block."""
        return {"frames": self.frames, "keyframes": dict(self.keyframes), "lines": dict(self.lines)}

    def families(self, lock: threading.Lock) -> Iterator[Metric]:
        with lock:
            frames, keyframes, lines = self.frames, dict(self.keyframes), dict(self.lines)
            area, area_total = self.area.cumulative(), self.area.total
        family = CounterMetricFamily("shmbridge_stream_frames", "Frames read through a screen stream", labels=[])
        family.add_metric([], frames)
        yield family
        family = CounterMetricFamily(
            "shmbridge_stream_keyframes",
            "Stream frames read whole, by reason (first, size, area, ...)",
            labels=["reason"],
        )
        for reason, count in sorted(keyframes.items()):
            family.add_metric([reason], count)
        yield family
        family = CounterMetricFamily(
            "shmbridge_stream_lines",
            "Lines of stream frames: reused unread, read by the engine, new, removed",
            labels=["kind"],
        )
        for kind, count in lines.items():
            family.add_metric([kind], count)
        yield family
        histogram = HistogramMetricFamily(
            "shmbridge_stream_changed_area", "Fraction of a stream frame's tiles that changed", labels=[]
        )
        histogram.add_metric([], area, area_total)
        yield histogram


class _HotPathCollector(Collector):
    """Renders the plain counters as Prometheus families at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        requests = CounterMetricFamily(
            "shmbridge_requests", "OCR requests by transport mode and outcome", labels=["mode", "outcome"]
        )
        for (mode, outcome), count in sorted(m.request_counts_snapshot()):
            requests.add_metric([mode, outcome], count)
        yield requests
        for attr, name, doc in (
            ("received", "shmbridge_bytes_received", "Pixel bytes handed to the service"),
            ("copied", "shmbridge_bytes_copied", "Pixel bytes the service copied or converted"),
            ("zero_copy", "shmbridge_zero_copy_requests", "Requests whose pixels were never copied"),
        ):
            family = CounterMetricFamily(name, doc, labels=["mode"])
            for mode, series in m.series.items():
                family.add_metric([mode], getattr(series, attr))
            yield family
        for index, (name, doc) in enumerate(_HISTOGRAMS):
            histogram = HistogramMetricFamily(name, doc, labels=["mode"])
            for mode, series in m.series.items():
                h = series.histograms[index]
                with m._lock:  # buckets and sum from the same moment
                    buckets, total = h.cumulative(), h.total
                histogram.add_metric([mode], buckets, total)
            yield histogram
        stages = HistogramMetricFamily(
            "shmbridge_stage_seconds",
            "Time per request stage (decode, convert, detect, recognize, postprocess) by engine",
            labels=["engine", "stage"],
        )
        with m._lock:
            stage_items = [(key, h.cumulative(), h.total) for key, h in sorted(m.stage_histograms.items())]
        for (engine, stage), buckets, total in stage_items:
            stages.add_metric([engine, stage], buckets, total)
        yield stages
        requests_seconds = HistogramMetricFamily(*_REQUEST_HISTOGRAM, labels=["mode", "outcome"])
        with m._lock:
            by_outcome = [(key, h.cumulative(), h.total) for key, h in sorted(m.request_latency.items())]
        for (mode, outcome), buckets, total in by_outcome:
            requests_seconds.add_metric([mode, outcome], buckets, total)
        yield requests_seconds
        yield from m.streams.families(m._lock)
        fallbacks = CounterMetricFamily(
            "shmbridge_fallbacks", "HTTP requests a client marked as a shared-memory fallback", labels=[]
        )
        fallbacks.add_metric([], m.fallback_count())
        yield fallbacks


class Metrics:
    """Every counter the service keeps. Latencies are in seconds (Prometheus convention)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.series: dict[str, _ModeSeries] = {mode: _ModeSeries() for mode in MODES}
        self.request_counts: dict[tuple[str, str], int] = {}
        #: (engine, stage) → latency histogram; an entry appears with the first request that had the stage.
        self.stage_histograms: dict[tuple[str, str], _Histogram] = {}
        self.request_latency: dict[tuple[str, str], _Histogram] = {}  # (mode, outcome) -> total time
        self._fallbacks = 0
        self.streams = StreamCounts()
        self._lock = threading.Lock()  # guards the counts, histograms and windows above and in the series
        reg.register(_HotPathCollector(self))
        ProcessCollector(registry=reg)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        PlatformCollector(registry=reg)  # python_info
        GCCollector(registry=reg)  # python_gc_*
        self.in_flight = Gauge("shmbridge_in_flight", "Requests admitted and not finished", registry=reg)
        self.queued = Gauge("shmbridge_queued", "Requests waiting for admission", registry=reg)
        self.sessions = Gauge("shmbridge_sessions", "Open shared-memory sessions", registry=reg)
        self.slots_in_use = Gauge("shmbridge_slots_in_use", "Slots lent to the service right now", registry=reg)
        self.bytes_mapped = Gauge("shmbridge_bytes_mapped", "Session shared-memory bytes mapped", registry=reg)
        self.region_bytes_mapped = Gauge(
            "shmbridge_region_bytes_mapped", "Bytes of registered named regions mapped", registry=reg
        )
        self.regions = Gauge("shmbridge_regions", "Registered named shared regions", registry=reg)
        self.live_streams = Gauge("shmbridge_streams", "Screen streams held by sessions and HTTP clients", registry=reg)
        self.cpu_wakeup_hold = Gauge(
            "shmbridge_cpu_wakeup_hold", "1 while low-latency mode keeps idle CPUs polling", registry=reg
        )
        ratio = Gauge("shmbridge_zero_copy_ratio", "Share of requests served without copying pixels", registry=reg)
        ratio.set_function(self.zero_copy_ratio)

    def check_mode(self, mode: str) -> None:
        """Raise ``ValueError`` for a mode label that is not one of ``MODES`` (a bug in a transport)."""
        if mode not in self.series:
            raise ValueError(f"unknown transport mode {mode!r}; one of {MODES}")

    def observe(
        self,
        mode: str,
        outcome: str,
        *,
        queue_s: float = 0.0,
        engine_s: float = 0.0,
        total_s: float | None = None,
        received: int = 0,
        copied: int = 0,
    ) -> None:
        """Record one finished request (from any thread); ``total_s`` is ``None`` when it never reached the core."""
        self.check_mode(mode)
        key = (mode, outcome)
        with self._lock:
            self.request_counts[key] = self.request_counts.get(key, 0) + 1
            if total_s is not None:
                latency = self.request_latency.get(key)
                if latency is None:
                    latency = self.request_latency[key] = _Histogram()
                latency.observe(total_s)
            if outcome != "ok":
                return
            total_s = total_s or 0.0
            series = self.series[mode]
            queue_h, engine_h = series.histograms
            queue_h.observe(queue_s)
            engine_h.observe(engine_s)
            series.received += received
            if copied:
                series.copied += copied
            else:
                series.zero_copy += 1
            series.window.append(total_s)

    def observe_stages(self, engine: str, stages: dict[str, float]) -> None:
        """Record one successful request's per-stage seconds (``EngineOutput.stages`` keys)."""
        with self._lock:
            for stage, seconds in stages.items():
                histogram = self.stage_histograms.get((engine, stage))
                if histogram is None:
                    histogram = self.stage_histograms[(engine, stage)] = _Histogram()
                histogram.observe(seconds)

    def observe_stream(self, info: StreamInfo) -> None:
        """Record what a stream did with one frame."""
        with self._lock:
            self.streams.observe(info)

    def stream_snapshot(self) -> dict[str, object]:
        with self._lock:
            return self.streams.snapshot()

    def latency_percentiles(self, mode: str) -> dict[str, float | int]:
        """Percentiles of ``mode``'s recent total latencies (seconds), from a copy taken under the lock."""
        with self._lock:
            ordered = sorted(self.series[mode].window)
        return percentiles(ordered)

    def request_counts_snapshot(self) -> list[tuple[tuple[str, str], int]]:
        """``request_counts`` items, copied under the lock (another thread may add a key meanwhile)."""
        with self._lock:
            return list(self.request_counts.items())

    # -- the JSON view ---------------------------------------------------------------------------

    def requests_by_mode(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (mode, outcome), count in self.request_counts_snapshot():
            out.setdefault(mode, {})[outcome] = count
        return out

    def per_mode(self, attr: str) -> dict[str, int]:
        """``received``, ``copied`` or ``zero_copy`` by mode."""
        return {mode: getattr(series, attr) for mode, series in self.series.items()}

    def ok_requests(self) -> int:
        return sum(count for (_mode, outcome), count in self.request_counts_snapshot() if outcome == "ok")

    def count_fallback(self) -> None:
        """Count an HTTP request a client marked as a shared-memory fallback."""
        with self._lock:
            self._fallbacks += 1

    def fallback_count(self) -> int:
        return self._fallbacks

    def zero_copy_ratio(self) -> float:
        ok = self.ok_requests()
        return sum(s.zero_copy for s in self.series.values()) / ok if ok else 0.0

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)
