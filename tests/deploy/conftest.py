"""Session fixtures for the container tests: one private Docker engine, one image built on a local base.

The engine and the image are made once per test session, the first time a test asks for them, and
reused by every container test. Both are package-scoped, so the engine stops as soon as the last test in
tests/deploy is done, not at the end of the session; its teardown removes every container, volume, mount and file
(``tests/support/docker_engine.py``). Where no engine can run, the tests that need one skip with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.deploy.manifests import DOCKERFILE, REPO
from tests.support.base_image import BaseImageUnavailable, import_base
from tests.support.docker_engine import EngineUnavailable, PrivateDockerd, engine_unavailable, start_private_dockerd

IMAGE = "shmbridge:0.1.0"  # the tag the compose files name, so `docker-compose up --no-build` finds it


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    base: str
    base_was_cached: bool
    seconds: dict[str, float]


@pytest.fixture(scope="package")
def docker_engine() -> Iterator[PrivateDockerd]:
    reason = engine_unavailable()
    if reason is not None:
        pytest.skip(f"no Docker engine: {reason}")
    try:
        daemon = start_private_dockerd()
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")
    try:
        yield daemon
    finally:
        left_behind = daemon.stop()
        assert not left_behind, left_behind


@pytest.fixture(scope="package")
def shmbridge_image(docker_engine: PrivateDockerd) -> BuiltImage:
    """deploy/Dockerfile built by the engine's own (legacy) builder on the debootstrap base."""
    started = time.monotonic()
    try:
        base, cached = import_base(docker_engine)
    except BaseImageUnavailable as exc:
        pytest.skip(f"no local base image: {exc}")
    based = time.monotonic()
    docker_engine.run(
        "build", "--network=host", f"--build-arg=PYTHON_IMAGE={base}", f"--file={DOCKERFILE}", f"--tag={IMAGE}",
        str(REPO), timeout=1200,
    )  # fmt: skip
    seconds = {"base": based - started, "build": time.monotonic() - based}
    return BuiltImage(IMAGE, base, cached, seconds)


@pytest.fixture
def engine(docker_engine: PrivateDockerd) -> Iterator[PrivateDockerd]:
    """The package's engine, with every container and volume a test made removed after it, pass or fail."""
    yield docker_engine
    docker_engine.remove_all_containers()
    docker_engine.run("volume", "prune", "--force", check=False)
