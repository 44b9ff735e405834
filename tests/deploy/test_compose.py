"""Docker Compose files: schema, no privileges, only the socket volume shared, peers admitted.

Rules and how they are checked: ``tests/deploy/manifests.py`` and docs/deployment.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    COMPOSE_FILES,
    HOST_COMPOSE,
    SERVICE_ID,
    SIDECAR_COMPOSE,
    compose,
    compose_user,
    json_list,
    peer_admitted,
    systemd_allowed_peers,
)

# -- Docker Compose -----------------------------------------------------------------------------------

FORBIDDEN_COMPOSE_KEYS = {"ipc", "pid", "privileged", "shm_size", "cap_add", "devices", "cgroup_parent"}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_matches_compose_spec_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    vendor = pytest.importorskip("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((Path(vendor.__file__).parent / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose(path))]
    assert not errors, errors


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_services_are_unprivileged(path: Path) -> None:
    for name, service in compose(path)["services"].items():
        assert not FORBIDDEN_COMPOSE_KEYS & service.keys(), (name, FORBIDDEN_COMPOSE_KEYS & service.keys())
        for key in ("network_mode", "userns_mode", "uts"):
            assert service.get(key) != "host", (name, key)
        uid, gid = compose_user(service)
        assert uid != 0 and gid != 0, f"{name} runs as root"
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        options = service.get("security_opt", [])
        assert "no-new-privileges:true" in options, name
        assert not any("unconfined" in option for option in options), name
        for volume in service.get("volumes", []):
            assert isinstance(volume, dict), f"{name}: use the long volume syntax"
            assert volume.get("source") not in {"/dev/shm", "/var/run/docker.sock", "/run/docker.sock"}
            assert volume["target"] != "/dev/shm", name


def test_compose_sidecar_shares_only_the_socket_volume() -> None:
    doc = compose(SIDECAR_COMPOSE)
    services = doc["services"]
    service, client = services["shmbridge"], services["client"]
    shared = {v["source"] for v in service["volumes"]} & {v["source"] for v in client["volumes"]}
    assert shared == {"shmbridge-socket"}
    assert set(doc["volumes"]) == {"shmbridge-socket"}
    assert all(v["type"] == "volume" for v in service["volumes"] + client["volumes"])
    for svc in (service, client):
        (mount,) = (v for v in svc["volumes"] if v["source"] == "shmbridge-socket")
        assert Path(svc["environment"]["SHMBRIDGE_SOCKET_PATH"]).parent == Path(mount["target"])
    (client_mount,) = client["volumes"]
    assert client_mount["read_only"] is True
    assert client["depends_on"]["shmbridge"]["condition"] == "service_healthy"
    assert client["environment"]["SHMBRIDGE_URL"] == "http://shmbridge:8080"


def test_compose_sidecar_client_passes_the_peer_check() -> None:
    services = compose(SIDECAR_COMPOSE)["services"]
    service_uid, _ = compose_user(services["shmbridge"])
    env = services["shmbridge"]["environment"]
    allowed_uids = json_list(env, "SHMBRIDGE_ALLOWED_UIDS", [service_uid])  # default: its own uid
    allowed_gids = json_list(env, "SHMBRIDGE_ALLOWED_GIDS", [])
    assert service_uid == SERVICE_ID
    assert peer_admitted(*compose_user(services["client"]), allowed_uids, allowed_gids)


def test_compose_host_variant_reaches_the_native_service() -> None:
    (client,) = compose(HOST_COMPOSE)["services"].values()
    (mount,) = client["volumes"]
    assert mount == {
        "type": "bind",
        "source": "/run/shmbridge",
        "target": "/run/shmbridge",
        "read_only": True,
    }  # long syntax: a missing /run/shmbridge fails `up` (no `create_host_path`: Compose 1.29 rejects it)
    assert "host.docker.internal:host-gateway" in client["extra_hosts"]
    assert client["environment"]["SHMBRIDGE_URL"].startswith("http://host.docker.internal:")
    assert Path(client["environment"]["SHMBRIDGE_SOCKET_PATH"]).parent == Path("/run/shmbridge")
    assert "${SHMBRIDGE_UID" in client["user"] and "${SHMBRIDGE_GID" in client["user"]
    # With the defaults the client is the systemd unit's user, whom the unit admits.
    allowed_uids, allowed_gids = systemd_allowed_peers()
    assert peer_admitted(*compose_user(client), allowed_uids, allowed_gids)
