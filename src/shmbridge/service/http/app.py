"""The HTTP side of the service: ``create_app(core, sessions, budget)`` builds the FastAPI application.

It wires the routers (legacy JSON in ``legacy``, raw and encoded bodies in ``ocr``, named regions in
``shmem``, an HTTP client's screen streams in ``streams``), the one error shape and body limits
(``errors``), and serves the small read-only routes itself: ``/health``
(= ``/health/ready``), ``/health/live``, ``/api/v1/bridge/info``, ``/metrics`` (Prometheus) and
``/metrics/enhanced`` (JSON with percentiles). The access log is ``access``. OpenAPI is at
``/openapi.json``, its UI at ``/docs``.

It must never do OCR itself or bypass ``ServiceCore.process``: every transport shares admission, timeouts
and metrics there, nor close the region registry: that is its owner's, ``Server``, which closes it after
the core has drained.
"""

from __future__ import annotations

import time
from importlib import metadata
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response

from ... import wire
from ...memory import MemoryBudget
from ..core import ServiceCore
from ..fd_budget import Descriptors
from ..metrics import MODES
from ..sessions import SessionServer
from ..wakeups import OFF_STATUS, hold_status
from .access import AccessLogMiddleware
from .auth import BearerTokenMiddleware
from .body_budget import BodyBudget, BodyBudgetMiddleware
from .context import DecodeGate, HttpContext
from .docs import install_docs
from .errors import BodyLimitMiddleware, install_error_handlers
from .legacy import LEGACY_JSON_PATHS, legacy_router
from .ocr import ocr_router
from .regions import RegionRegistry
from .shmem import shmem_router
from .streams import streams_router

#: Body limit of routes that take no image (region registration, shared-memory requests, GETs).
SMALL_BODY = 1 << 20


def _read_version() -> str:
    try:
        return metadata.version("shmbridge")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


#: Read once: the metadata lookup opens files, and /health must answer when no fd is left to open one.
_VERSION = _read_version()


def _version() -> str:
    return _VERSION


def create_app(
    core: ServiceCore,
    sessions: SessionServer | None,
    budget: MemoryBudget,
    fds: Descriptors | None = None,
    regions: RegionRegistry | None = None,
) -> FastAPI:
    """The FastAPI app for one service; ``sessions`` is ``None`` when session mode is off.

    ``regions`` is the caller's registry, which the caller closes; without one the app makes its own
    (``RegionRegistry.for_service``), and whoever made the app closes that one (``app.state.regions``)."""
    config = core.config
    if regions is None:
        regions = RegionRegistry.for_service(config, fds)
    gate = DecodeGate(max(2, config.in_flight_limit), config.queue_size, config.request_timeout, config.retry_after,
                      config.decode_timeout)  # fmt: skip
    ctx = HttpContext(core, sessions, budget, regions, gate)
    core.metrics.region_bytes_mapped.set_function(lambda: regions.status()["bytes_mapped"])  # read at scrape
    app = FastAPI(
        title="shmbridge",
        version=_version(),
        description="OCR over shared memory with an HTTP fallback. Boxes are pixels with a top-left origin.",
        docs_url=None,  # served from local files by install_docs, not from a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.context = ctx
    app.state.regions = regions

    def limit_for(path: str) -> int:
        if path == "/api/v1/ocr":
            return config.max_frame_bytes
        if path in LEGACY_JSON_PATHS:
            return ctx.json_body_limit
        return SMALL_BODY

    # The last added runs first: the token, then the per-route limits, then the shared body budget.
    app.add_middleware(BodyBudgetMiddleware, budget=BodyBudget(config.http_body_bytes, config.retry_after))
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=limit_for,
        json_paths=LEGACY_JSON_PATHS,
        body_timeout=config.request_timeout,
    )
    if config.api_token is not None:
        app.add_middleware(
            BearerTokenMiddleware, token=config.api_token.get_secret_value(), protect_metrics=config.metrics_auth
        )
    if config.access_log:  # outermost, so it sees every answer, the body limit's too
        app.add_middleware(AccessLogMiddleware)
    install_error_handlers(app)
    app.include_router(legacy_router(ctx))
    app.include_router(ocr_router(ctx))
    app.include_router(shmem_router(ctx))
    app.include_router(streams_router(ctx))
    _add_service_routes(app, ctx)
    return app


def _add_service_routes(app: FastAPI, ctx: HttpContext) -> None:
    core, config = ctx.core, ctx.config

    @app.get("/health/live", tags=["service"], summary="Liveness: 200 while the process answers HTTP at all")
    async def health_live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health", tags=["service"], summary="200 when ready, 503 while starting or shutting down")
    @app.get("/health/ready", tags=["service"], summary="Readiness (the same as /health): 200 when ready for OCR")
    async def health() -> JSONResponse:
        body = {
            "status": "ok" if core.ready else "unavailable",
            "ready": core.ready,
            "engine": core.pool.name,
            "version": _version(),
            "uptime_s": round(time.time() - core.started_at, 3),
            "in_flight": core.in_flight,
            "queued": core.queued,
            "last_error": core.last_error,
        }
        return JSONResponse(body, status_code=200 if core.ready else 503)

    @app.get("/api/v1/bridge/info", tags=["service"], summary="Modes, socket, protocol version, limits, engine")
    async def bridge_info() -> dict[str, Any]:
        return {
            "service": "shmbridge",
            "version": _version(),
            "protocol_version": wire.VERSION,
            "modes": {
                "http": True,
                "legacy": True,
                "shm_session": ctx.sessions is not None,
                "shm_region": ctx.regions.enabled,
            },
            "socket_path": str(ctx.sessions.socket_path) if ctx.sessions is not None else None,
            "region_dir": str(config.region_dir) if ctx.regions.enabled else None,
            "coordinates": "pixels, top-left origin",
            "limits": wire.info_limits(config, max_json_body_bytes=ctx.json_body_limit),
            "engine": {**core.pool.capabilities(), "workers": core.pool.size},
            "low_latency": _low_latency_status(ctx),
        }

    @app.get("/metrics", tags=["service"], summary="Prometheus text format")
    async def metrics() -> Response:
        return Response(core.metrics.prometheus_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics/enhanced", tags=["service"], summary="The same figures as JSON, with p50/p95/p99")
    async def metrics_enhanced() -> dict[str, Any]:
        return enhanced_metrics(ctx)


def _low_latency_status(ctx: HttpContext) -> dict[str, Any]:
    """The hold follows session traffic, so without sessions it is asked for but can do nothing."""
    if ctx.sessions is not None:
        return ctx.sessions.low_latency_status()
    if ctx.config.low_latency:
        return hold_status(ctx.config.low_latency_hold, "shared-memory sessions are off (--no-shm)")
    return dict(OFF_STATUS)


def _samples(metric: Any) -> list[Any]:
    return [sample for family in metric.collect() for sample in family.samples]


def _gauge(metric: Any) -> float:
    return next((sample.value for sample in _samples(metric)), 0.0)


def enhanced_metrics(ctx: HttpContext) -> dict[str, Any]:
    """Counters by mode and outcome, latency percentiles (seconds), ratios and gauges, as plain JSON."""
    m = ctx.core.metrics
    requests = m.requests_by_mode()
    total = sum(sum(outcomes.values()) for outcomes in requests.values())
    fallbacks = m.fallback_count()
    return {
        "uptime_s": round(time.time() - ctx.core.started_at, 3),
        "requests": requests,
        "requests_total": total,
        "latency_seconds": {mode: m.latency_percentiles(mode) for mode in MODES},
        "zero_copy_ratio": m.zero_copy_ratio(),
        "zero_copy_requests": m.per_mode("zero_copy"),
        "fallbacks": fallbacks,
        "fallback_ratio": fallbacks / total if total else 0.0,
        "bytes_received": m.per_mode("received"),
        "bytes_copied": m.per_mode("copied"),
        "in_flight": _gauge(m.in_flight),
        "queued": _gauge(m.queued),
        "sessions": _gauge(m.sessions),
        "slots_in_use": _gauge(m.slots_in_use),
        "bytes_mapped": _gauge(m.bytes_mapped),
        "regions": _gauge(m.regions),
        "region_bytes_mapped": ctx.regions.status()["bytes_mapped"],
        "streams": {"live": len(ctx.core.streams.registry), **m.stream_snapshot()},
    }
