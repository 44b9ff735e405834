"""Paths and parsers shared by the checks of the deployment files under deploy/ (``test_*.py`` here).

The files parse, match published schemas, and keep the rules.

Rules checked (docs/deployment.md explains them): no ``ipc: host``/``pid: host``/``privileged``/``shm_size``
and no hostIPC/hostPID/hostNetwork anywhere; nothing runs as root; in a sidecar layout the socket
directory is the only volume the service and its client share; every client's uid/gid passes the
service's peer check; the image has a HEALTHCHECK and fetches nothing at run time; the systemd unit and the
launchd plist parse and are hardened.

Pure file checks: no Docker engine, no cluster, no network. Schema validation uses the schemas shipped
inside ``kubernetes-validate`` (Kubernetes OpenAPI, strict) and ``check-jsonschema`` (compose-spec);
those tests skip when the packages are missing, the structural ones always run.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILES = sorted(DEPLOY.glob("docker-compose*.yml"))
K8S_FILES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
SIDECAR_COMPOSE = DEPLOY / "docker-compose.yml"
HOST_COMPOSE = DEPLOY / "docker-compose.host.yml"
SIDECAR_K8S = DEPLOY / "kubernetes" / "sidecar.yaml"
DAEMONSET_K8S = DEPLOY / "kubernetes" / "daemonset.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
SYSTEMD_UNIT = DEPLOY / "systemd" / "shmbridge.service"
PLIST = DEPLOY / "launchd" / "com.shmbridge.ocr.plist"

#: The service's fixed uid/gid in the image, the sysusers file and every manifest.
SERVICE_ID = 10001
SERVICE_NAMES = {"shmbridge"}  # compose service / container name of the OCR service itself
POD_KINDS = {"Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"}


# -- helpers -------------------------------------------------------------------------------------------


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in docs), path
    return docs


def compose(path: Path) -> dict[str, Any]:
    (doc,) = load_yaml_docs(path)
    assert isinstance(doc.get("services"), dict) and doc["services"], path
    return doc


def interpolate_default(value: str) -> str:
    """Compose ``${VAR:-default}`` / ``${VAR-default}`` → default, as if the variable were unset."""
    value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)
    assert "${" not in value, f"variable without a default: {value}"
    return value


def compose_user(service: dict[str, Any]) -> tuple[int, int]:
    """A compose service's uid and gid; every service must set ``user`` as numeric uid:gid."""
    user = interpolate_default(str(service["user"]))
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"user must be numeric uid:gid, got {user!r}"
    return int(uid), int(gid)


def json_list(env: dict[str, Any], name: str, default: list[int]) -> list[int]:
    return [int(x) for x in json.loads(env[name])] if name in env else default


def peer_admitted(uid: int, gid: int, allowed_uids: list[int], allowed_gids: list[int]) -> bool:
    """The service's rule (sessions/listener.py: SessionServer.peer_allowed): uid listed, or primary gid listed."""
    return uid in allowed_uids or gid in allowed_gids


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] == "Pod":
            yield doc, doc["spec"]
        elif doc["kind"] in POD_KINDS:
            yield doc, doc["spec"]["template"]["spec"]


def all_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    own = container.get("securityContext", {})
    return own[key] if key in own else pod.get("securityContext", {}).get(key)


def service_and_clients(pod: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    containers = all_containers(pod)
    service = next((c for c in containers if c["name"] in SERVICE_NAMES), None)
    return service, [c for c in containers if c["name"] not in SERVICE_NAMES]


def mounts_by_volume(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container.get("volumeMounts", [])}


def socket_mount(container: dict[str, Any]) -> dict[str, Any]:
    """The mount holding the container's SHMBRIDGE_SOCKET_PATH."""
    path = Path(container_env(container)["SHMBRIDGE_SOCKET_PATH"])
    holders = [m for m in container["volumeMounts"] if Path(m["mountPath"]) in path.parents]
    assert len(holders) == 1, f"{container['name']}: socket {path} must lie under exactly one mount"
    return holders[0]


def systemd_directives(path: Path = SYSTEMD_UNIT) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value, in order (systemd keys may repeat, unlike configparser's)."""
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())  # must parse as an INI file at all
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    assert set(sections) == set(parser.sections())
    return sections


def systemd_allowed_peers() -> tuple[list[int], list[int]]:
    """Who the unit admits: its user's uid (from the sysusers file) unless --allow-uid flags replace it."""
    service = systemd_directives()["Service"]
    argv = shlex.split(service["ExecStart"][-1])
    uids = [int(argv[i + 1]) for i, a in enumerate(argv) if a == "--allow-uid"]
    gids = [int(argv[i + 1]) for i, a in enumerate(argv) if a == "--allow-gid"]
    sysusers = (DEPLOY / "systemd" / "shmbridge.sysusers.conf").read_text()
    match = re.search(rf"^u\s+{service['User'][-1]}\s+(\d+)", sysusers, re.MULTILINE)
    assert match, "the unit's User must be defined in shmbridge.sysusers.conf"
    return uids or [int(match.group(1))], gids
