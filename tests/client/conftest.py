"""Fixtures for the client tests: real ``shmbridge serve`` processes with the null engine (helpers in ``helpers``).

One service is shared by the module-independent tests that only read (``service``); tests that kill, limit
or reconfigure a service start their own. Every process started here is stopped, whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shmbridge.environment import DEPRECATED, SOCKET_VARIABLE, URL_VARIABLE
from tests.support.service import RunningService, running_service

from .helpers import FULL


@pytest.fixture(autouse=True)
def _no_socket_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests say which socket and URL a client gets; a developer's own variables must not leak in."""
    for name in (SOCKET_VARIABLE, URL_VARIABLE, *DEPRECATED):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """One null-engine service (full checksums, HTTP and sessions) shared by the tests that only read."""
    with running_service(tmp_path_factory.mktemp("shared"), *FULL) as running:
        yield running


@pytest.fixture
def own_service(tmp_path: Path) -> Iterator[RunningService]:
    """A fresh null-engine service for a test that changes its state (sessions, counters)."""
    with running_service(tmp_path, *FULL) as running:
        yield running
