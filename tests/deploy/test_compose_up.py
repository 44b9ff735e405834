"""The compose files with the Compose installed here (Debian's docker-compose 1.29), and the sidecar stack up.

``docker-compose config`` must accept every file as shipped (Compose v2 accepts them too: the compose-spec
schema test in ``test_compose.py``). ``up`` runs the sidecar file with three changes a registry-less,
bridge-less test engine needs, each made on a parsed copy and nothing else: no ``build`` (the session's
image is already tagged as the file names it), no published ``ports`` and ``network_mode: none`` (this
engine has no bridge), and the null engine with a fast health probe. Everything that matters for shared
memory stays as shipped: the users, the one socket volume, read-only roots, dropped capabilities.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import BuiltImage
from tests.deploy.manifests import COMPOSE_FILES, SIDECAR_COMPOSE, compose
from tests.support.docker_engine import EngineUnavailable, PrivateDockerd, ensure_installed

pytestmark = pytest.mark.timeout(900)  # the first container test of a session also pays for the build
PROJECT = "shmbridgetest"


@pytest.fixture(scope="module")
def docker_compose() -> str:
    try:
        ensure_installed()
    except EngineUnavailable as exc:
        pytest.skip(f"no docker-compose: {exc}")
    found = shutil.which("docker-compose")
    assert found is not None
    return found


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_the_installed_docker_compose_accepts_the_file(docker_compose: str, path: Path) -> None:
    done = subprocess.run(
        [docker_compose, "--file", str(path), "config", "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def offline_variant(source: Path = SIDECAR_COMPOSE) -> dict[str, object]:
    """The sidecar file as this engine can run it (see the module docstring for the three changes)."""
    doc = compose(source)
    for name, service in doc["services"].items():
        service.pop("build", None)
        service.pop("ports", None)
        service["network_mode"] = "none"
        if name == "shmbridge":
            service["environment"]["SHMBRIDGE_ENGINE"] = "null"
            service["healthcheck"] = {"interval": "2s", "start_period": "60s"}  # the image's test command
    return doc


@pytest.fixture
def compose_project(
    docker_engine: PrivateDockerd, docker_compose: str, tmp_path: Path
) -> Iterator[tuple[list[str], dict[str, str]]]:
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(offline_variant(), sort_keys=False))
    argv = [docker_compose, "--project-name", PROJECT, "--file", str(path)]
    try:
        yield argv, docker_engine.env
    finally:
        subprocess.run([*argv, "down", "--volumes", "--timeout", "10"], capture_output=True, env=docker_engine.env,
                       timeout=180)  # fmt: skip
        docker_engine.remove_all_containers()


def test_compose_up_answers_the_client_container_over_shared_memory(
    compose_project: tuple[list[str], dict[str, str]], shmbridge_image: BuiltImage, docker_engine: PrivateDockerd
) -> None:
    argv, env = compose_project
    up = subprocess.run(
        [*argv, "up", "--no-build", "--abort-on-container-exit", "--exit-code-from", "client", "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    answers = [line for line in up.stdout.splitlines() if "test card:" in line]
    assert answers and all("test card: shared_memory" in line for line in answers), up.stdout[-3000:]
    # No network was made for the stack: this engine has only `host` and `none`.
    networks = docker_engine.run("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert set(networks) <= {"host", "none"}, networks
