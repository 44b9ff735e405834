"""Kubernetes manifests: API schema, restricted pods, probes, socket volume, peers admitted.

Rules and how they are checked: ``tests/deploy/manifests.py`` and docs/deployment.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import (
    DAEMONSET_K8S,
    DEPLOY,
    K8S_FILES,
    SERVICE_ID,
    SERVICE_NAMES,
    SIDECAR_K8S,
    all_containers,
    container_env,
    effective,
    json_list,
    load_yaml_docs,
    mounts_by_volume,
    peer_admitted,
    pod_specs,
    service_and_clients,
    socket_mount,
)

# -- Kubernetes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_kubernetes_manifests_match_the_api_schema(path: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.utils.latest_version()
    for doc in load_yaml_docs(path):
        kubernetes_validate.validate(doc, version, strict=True)  # raises on unknown or mistyped fields


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_kubernetes_pods_are_restricted(path: Path) -> None:
    docs = load_yaml_docs(path)
    specs = list(pod_specs(docs))
    assert specs, f"{path} has no pod template"
    for doc, pod in specs:
        where = f"{path.name}:{doc['kind']}/{doc['metadata']['name']}"
        for key in ("hostIPC", "hostPID", "hostNetwork"):
            assert pod.get(key) in (None, False), (where, key)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod.get("automountServiceAccountToken") is False, where
        for container in all_containers(pod):
            name = f"{where}/{container['name']}"
            sc = container["securityContext"]
            assert effective(pod, container, "runAsNonRoot") is True, name
            assert effective(pod, container, "runAsUser") not in (None, 0), name
            assert effective(pod, container, "runAsGroup") not in (None, 0), name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc.get("privileged") is not True, name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= container["resources"][kind].keys(), (name, kind)
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: give the container a writable /tmp (read-only root)"
            assert "/dev/shm" not in mounts, name


def health_probe(probe: dict[str, Any]) -> bool:
    if "httpGet" in probe:
        return probe["httpGet"]["path"] == "/health"
    return any("/health" in part for part in probe.get("exec", {}).get("command", []))


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_kubernetes_service_has_health_probes(path: Path) -> None:
    services = [c for _, pod in pod_specs(load_yaml_docs(path)) for c in all_containers(pod)]
    services = [c for c in services if c["name"] in SERVICE_NAMES]
    assert len(services) == 1, path
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert health_probe(services[0][probe]), probe


def test_kubernetes_sidecar_shares_only_the_socket_emptydir() -> None:
    (deployment,) = load_yaml_docs(SIDECAR_K8S)
    pod = deployment["spec"]["template"]["spec"]
    service, clients = service_and_clients(pod)
    assert service is not None and clients
    # A native sidecar: an init container that keeps running.
    assert service in pod["initContainers"] and service["restartPolicy"] == "Always"
    volumes = {v["name"]: v for v in pod["volumes"]}
    for client in clients:
        shared = mounts_by_volume(service).keys() & mounts_by_volume(client).keys()
        assert shared == {"shmbridge-socket"}, client["name"]
        assert socket_mount(client)["name"] == "shmbridge-socket"
        assert socket_mount(client)["readOnly"] is True
        assert container_env(client)["SHMBRIDGE_SOCKET_PATH"] == container_env(service)["SHMBRIDGE_SOCKET_PATH"]
    assert socket_mount(service)["name"] == "shmbridge-socket"
    assert "emptyDir" in volumes["shmbridge-socket"]
    # Memory-backed volumes only in the optional named-region variant, which is not enabled here.
    assert not [v for v in volumes.values() if v.get("emptyDir", {}).get("medium") == "Memory"]
    # The socket sits in a subdirectory the service creates: kubelet's emptyDir root is 0777, root-owned.
    socket = Path(container_env(service)["SHMBRIDGE_SOCKET_PATH"])
    assert socket.parent.parent == Path(socket_mount(service)["mountPath"])
    # Only the pod's own containers need HTTP.
    assert container_env(service)["SHMBRIDGE_HTTP_HOST"] == "127.0.0.1"


def test_kubernetes_daemonset_uses_a_prepared_host_directory_and_a_service() -> None:
    docs = load_yaml_docs(DAEMONSET_K8S)
    (daemonset,) = (d for d in docs if d["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    service_container, _ = service_and_clients(pod)
    assert service_container is not None
    (socket_volume,) = (v for v in pod["volumes"] if v["name"] == socket_mount(service_container)["name"])
    assert socket_volume["hostPath"] == {"path": "/run/shmbridge", "type": "Directory"}
    tmpfiles = (DEPLOY / "kubernetes" / "node-tmpfiles.conf").read_text()
    assert re.search(rf"^d\s+/run/shmbridge\s+0770\s+{SERVICE_ID}\s+{SERVICE_ID}\b", tmpfiles, re.MULTILINE)

    (svc,) = (d for d in docs if d["kind"] == "Service")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert [p["port"] for p in svc["spec"]["ports"]] == [8080]
    assert container_env(service_container)["SHMBRIDGE_HTTP_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_kubernetes_agents_pass_the_peer_check(path: Path) -> None:
    containers = [(pod, c) for _, pod in pod_specs(load_yaml_docs(path)) for c in all_containers(pod)]
    ((service_pod, service),) = [(pod, c) for pod, c in containers if c["name"] in SERVICE_NAMES]
    agents = [(pod, c) for pod, c in containers if c["name"] not in SERVICE_NAMES]
    env = container_env(service)
    service_uid = effective(service_pod, service, "runAsUser")
    assert service_uid == SERVICE_ID
    allowed_uids = json_list(env, "SHMBRIDGE_ALLOWED_UIDS", [service_uid])
    allowed_gids = json_list(env, "SHMBRIDGE_ALLOWED_GIDS", [])
    assert agents
    for pod, agent in agents:
        uid, gid = effective(pod, agent, "runAsUser"), effective(pod, agent, "runAsGroup")
        assert peer_admitted(uid, gid, allowed_uids, allowed_gids), (agent["name"], uid, gid)
        # ...and the socket directory (0770, owned by the service) lets it in: same uid or same group.
        assert uid == service_uid or gid == SERVICE_ID, agent["name"]
