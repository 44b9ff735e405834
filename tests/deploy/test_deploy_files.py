"""The deploy/ tree is complete, and its scripts and the deployment doc say what they should.

Rules and how they are checked: ``tests/deploy/manifests.py`` and docs/deployment.md.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from tests.deploy.manifests import (
    COMPOSE_FILES,
    DEPLOY,
    DOCKERFILE,
    K8S_FILES,
    PLIST,
    REPO,
    SYSTEMD_UNIT,
)


def test_expected_files_exist() -> None:
    assert [p.name for p in COMPOSE_FILES] == ["docker-compose.host.yml", "docker-compose.yml"]
    assert {p.name for p in K8S_FILES} == {"sidecar.yaml", "daemonset.yaml"}
    for path in (DOCKERFILE, SYSTEMD_UNIT, PLIST, DEPLOY / "example_client.py", REPO / ".dockerignore"):
        assert path.is_file(), path


# -- scripts and docs ---------------------------------------------------------------------------------


def load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), DEPLOY / name)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_client_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    client = load_script("example_client.py")
    monkeypatch.setenv("SHMBRIDGE_URL", "http://shmbridge:8080")
    monkeypatch.delenv("SHMBRIDGE_SOCKET_PATH", raising=False)
    args = client.build_parser().parse_args(["--require-shm"])
    assert (args.url, args.socket, args.images) == ("http://shmbridge:8080", "/run/shmbridge/ocr.sock", [])
    card = client.test_card()
    assert card.dtype.name == "uint8" and card.ndim == 3 and card.shape[2] == 3 and card.min() < card.max()


def test_check_offline_pixel_formats() -> None:
    check = load_script("check_offline.py")
    card = check.test_card()
    shapes = {fmt: check.to_format(card, fmt).shape for fmt in ("rgb", "bgr", "gray", "rgba", "bgra")}
    assert shapes["gray"] == card.shape[:2] and shapes["rgba"][2] == shapes["bgra"][2] == 4
    assert (check.to_format(card, "bgr")[..., 0] == card[..., 2]).all()


def test_deployment_doc_covers_the_essentials() -> None:
    text = (REPO / "docs" / "deployment.md").read_text()
    for phrase in (
        "shared_memory",
        "http_fallback",
        "shmbridge status",
        "POST /api/v1/ocr",
        "base64",
        "SO_PEERCRED",
        "host.docker.internal",
        "6 MiB",
        "24 MiB",
        "0770",
        "ipc: host",
        "session_bytes",
        "max_frame_bytes",
    ):
        assert phrase in text, phrase
