"""The deployment files under deploy/: they parse, they match published schemas, and they keep the rules.

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
import importlib.util
import json
import plistlib
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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


def test_expected_files_exist() -> None:
    assert [p.name for p in COMPOSE_FILES] == ["docker-compose.host.yml", "docker-compose.yml"]
    assert {p.name for p in K8S_FILES} == {"sidecar.yaml", "daemonset.yaml"}
    for path in (DOCKERFILE, SYSTEMD_UNIT, PLIST, DEPLOY / "example_client.py", REPO / ".dockerignore"):
        assert path.is_file(), path


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
    """The service's rule (session_server.peer_allowed): uid listed, or primary gid listed."""
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
        "bind": {"create_host_path": False},
    }
    assert "host.docker.internal:host-gateway" in client["extra_hosts"]
    assert client["environment"]["SHMBRIDGE_URL"].startswith("http://host.docker.internal:")
    assert Path(client["environment"]["SHMBRIDGE_SOCKET_PATH"]).parent == Path("/run/shmbridge")
    assert "${SHMBRIDGE_UID" in client["user"] and "${SHMBRIDGE_GID" in client["user"]
    # With the defaults the client is the systemd unit's user, whom the unit admits.
    allowed_uids, allowed_gids = systemd_allowed_peers()
    assert peer_admitted(*compose_user(client), allowed_uids, allowed_gids)


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


# -- Dockerfile ---------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "dangling line continuation"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_dockerfile_base_and_user() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    bases = [args.get(a.split()[0].strip("${}"), a.split()[0]) for k, a in instructions if k == "FROM"]
    assert all(base.startswith("python:3.11-slim") for base in bases), bases
    users = [a for k, a in final_stage() if k == "USER"]
    assert users, "the runtime stage needs a USER"
    uid, _, gid = users[-1].partition(":")
    assert uid not in {"0", "root", ""} and gid not in {"0", "root"}
    assert (int(uid), int(gid)) == (SERVICE_ID, SERVICE_ID)
    run_text = " ".join(a for k, a in final_stage() if k == "RUN")
    assert f"--uid {SERVICE_ID}" in run_text and f"-o {SERVICE_ID} -g {SERVICE_ID} -m 0770 /run/shmbridge" in run_text


def test_dockerfile_healthcheck_and_command() -> None:
    stage = final_stage()
    (healthcheck,) = [a for k, a in stage if k == "HEALTHCHECK"]
    assert "/health" in healthcheck and "python" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    (cmd,) = [a for k, a in stage if k == "CMD"]
    assert json.loads(cmd) == ["shmbridge", "serve"]
    assert not [a for k, a in stage if k == "ENTRYPOINT"]
    env = " ".join(a for k, a in stage if k == "ENV")
    assert "SHMBRIDGE_SOCKET_PATH=/run/shmbridge/ocr.sock" in env
    assert "SHMBRIDGE_HTTP_HOST=0.0.0.0" in env and "SHMBRIDGE_HTTP_PORT=8080" in env


def test_dockerfile_fetches_nothing_at_run_time() -> None:
    stage = final_stage()
    run_time = [a for k, a in stage if k in {"CMD", "ENTRYPOINT", "HEALTHCHECK"}]
    for text in run_time:
        assert not re.search(r"\b(curl|wget|pip|apt-get|git)\b", text), text
        for url in re.findall(r"https?://[^\s'\"]+", text):
            assert url.startswith(("http://127.0.0.1", "http://localhost")), url
    assert not [a for k, a in dockerfile_instructions() if k == "ADD" and "://" in a], "no remote ADD"
    # The engine is exercised at build time with networking off: a model fetch would fail the build.
    users_then_runs = [(k, a) for k, a in stage if k in {"USER", "RUN"}]
    last_user = max(i for i, (k, _) in enumerate(users_then_runs) if k == "USER")
    offline = [a for k, a in users_then_runs[last_user:] if k == "RUN" and "--network=none" in a]
    assert offline and "check_offline.py" in offline[0]


def test_dockerignore_is_an_allow_list_covering_the_copies() -> None:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    assert {"pyproject.toml", "src", "deploy/example_client.py", "deploy/check_offline.py"} <= allowed
    assert not {a for a in allowed if a.startswith((".venv", ".git", "tests"))}
    copied = " ".join(a for k, a in dockerfile_instructions() if k == "RUN")
    for name in ("deploy/example_client.py", "deploy/check_offline.py"):
        assert name in copied and (REPO / name).is_file()


# -- systemd and launchd ------------------------------------------------------------------------------


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


def test_systemd_unit_is_hardened() -> None:
    unit = systemd_directives()
    assert {"Unit", "Service", "Install"} <= unit.keys()
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["User"] not in {"root", "0"} and service["Group"] not in {"root", "0"}
    expected = {
        "RuntimeDirectory": "shmbridge",
        "RuntimeDirectoryMode": "0770",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
    }
    assert {key: service.get(key) for key in expected} == expected
    # These would break the peer check (PrivateUsers hides real uids) or uid alignment (DynamicUser).
    assert service.get("PrivateUsers", "no") == "no" and service.get("DynamicUser", "no") == "no"
    argv = shlex.split(service["ExecStart"])
    assert argv[1] == "serve" and argv[argv.index("--socket") + 1] == "/run/shmbridge/ocr.sock"
    assert systemd_allowed_peers()[0] == [SERVICE_ID]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_has_no_unknown_directives(tmp_path: Path) -> None:
    unit = tmp_path / "shmbridge.service"
    text = SYSTEMD_UNIT.read_text()
    unit.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.MULTILINE))
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert "Unknown" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_launchd_plist() -> None:
    with PLIST.open("rb") as handle:
        plist = plistlib.load(handle)
    assert plist["Label"] == "com.shmbridge.ocr" == PLIST.stem
    command = " ".join(plist["ProgramArguments"])
    assert " serve " in command and "--engine vision" in command and "--host 127.0.0.1" in command
    assert "--socket" in command
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert "UserName" not in plist or plist["UserName"] != "root"


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
