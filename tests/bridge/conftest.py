"""Fixtures: real ``shmbridge serve`` processes with the null engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.service import RunningService, running_service


@pytest.fixture
def null_service(tmp_path: Path) -> Iterator[RunningService]:
    """Null engine, full checksums, sessions only."""
    with running_service(tmp_path, "--engine-option", "checksum_mode=full", http=False) as service:
        yield service


@pytest.fixture
def slow_service(tmp_path: Path) -> Iterator[RunningService]:
    """Null engine that takes 400 ms a frame, so requests are really in flight."""
    with running_service(tmp_path, "--engine-option", "delay_ms=400", "--workers", "2", http=False) as service:
        yield service
