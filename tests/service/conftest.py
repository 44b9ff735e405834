"""Fixtures for the HTTP service tests: real ``shmbridge serve`` processes on loopback.

``null_service`` is shared by most tests (null engine, small limits so 413s are cheap to trigger). Tests
that need a special configuration start their own with ``service_factory``; every process is stopped and
its files removed by the fixture's finalizer.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .service_helpers import (
    MAX_FRAME_BYTES,
    MAX_PIXELS,
    MAX_REGION_BYTES,
    MAX_REGIONS_PER_CLIENT,
    ServiceProcess,
    start_service,
)


@pytest.fixture(scope="session")
def null_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("null")
    service = start_service(
        workdir,
        "--max-frame-bytes", str(MAX_FRAME_BYTES),
        "--max-pixels", str(MAX_PIXELS),
        "--max-regions-per-client", str(MAX_REGIONS_PER_CLIENT),
        "--max-region-bytes", str(MAX_REGION_BYTES),
        "--engine-option", "checksum_mode=full",
        "--no-warm-up",
    )  # fmt: skip
    yield service
    service.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def client(null_service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=null_service.base_url, timeout=30.0) as http:
        yield http


@pytest.fixture
def service_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServiceProcess]]:
    """Start services with their own flags; all are stopped and cleaned up after the test."""
    started: list[tuple[ServiceProcess, Path]] = []

    def factory(*args: str, **kwargs: object) -> ServiceProcess:
        workdir = tmp_path_factory.mktemp("svc")
        service = start_service(workdir, *args, **kwargs)  # type: ignore[arg-type]
        started.append((service, workdir))
        return service

    yield factory
    for service, workdir in started:
        service.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One engine slot, no queue, each request takes a second: a request is reliably in flight."""
    workdir = tmp_path_factory.mktemp("slow")
    service = start_service(
        workdir,
        "--engine-option", "delay_ms=1000",
        "--workers", "1",
        "--max-in-flight", "1",
        "--queue-size", "0",
        "--no-warm-up",
    )  # fmt: skip
    yield service
    service.stop()
    shutil.rmtree(workdir, ignore_errors=True)
