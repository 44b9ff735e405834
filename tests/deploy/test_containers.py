"""Zero-copy across real containers on a real (private) Docker engine: isolation, a killed client, a restart.

The service and its client run in two containers that share one thing, the named socket volume: no
``ipc: host``, no shared /dev/shm, no network between them (``--network none``; the restart test uses
``--network host`` so that HTTP exists to fall back to). The client runs as another uid, admitted by its
gid. Everything is read from the host as the kernel reports it: /proc/<pid>/maps and fds, namespaces.
The engine and the image come from ``conftest.py``; these tests skip with its reason where Docker cannot run.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.deploy.conftest import BuiltImage
from tests.deploy.manifests import SERVICE_ID
from tests.support.containers import SOCKET, container_mounts, start_client, start_service
from tests.support.docker_engine import PrivateDockerd
from tests.support.service import free_port, metric, shm_fds, shm_mappings, wait_until

# The first container test of a session also pays for the engine, the base image and the build.
pytestmark = pytest.mark.timeout(900)

NULL_FULL = ("--engine", "null", "--engine-option", "checksum_mode=full", "--allow-gid", str(SERVICE_ID))
FRAME_BYTES = 1080 * 1920 * 3


def _all_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_1080p_frame_crosses_two_isolated_containers_without_a_copy(
    engine: PrivateDockerd, shmbridge_image: BuiltImage
) -> None:
    service = start_service(engine, shmbridge_image.tag, "across-service", "across-socket", *NULL_FULL)
    client = start_client(engine, shmbridge_image.tag, "across-client", "across-socket", "frame", SOCKET)
    try:
        report = client.next_json(timeout=120)
        assert report["mode"] == "shared_memory", report
        assert report["checksum_matches"] and report["shape"] == [1080, 1920]
        assert report["uid"] != SERVICE_ID and report["gid"] == SERVICE_ID  # admitted by its gid alone
        # While the client holds its session the service maps the session's memfd; /dev/shm stays empty.
        maps = shm_mappings(service.pid)
        assert any("/memfd:shmbridge-" in line for line in maps), maps
        assert service.dev_shm() == [] and report["dev_shm"] == []
        host_ipc = os.readlink("/proc/self/ns/ipc")
        assert len({report["ipc"], service.namespace("ipc"), host_ipc}) == 3
        text = service.metrics_text()
        assert metric(text, "shmbridge_bytes_copied_total", mode="shm_session") == 0
        assert metric(text, "shmbridge_zero_copy_requests_total", mode="shm_session") == 1
        assert metric(text, "shmbridge_bytes_received_total", mode="shm_session") == FRAME_BYTES
        # What the two containers share: the socket volume, and nothing else.
        for name in ("across-service", "across-client"):
            mounts = [(m["Type"], m["Name"], m["RW"]) for m in container_mounts(engine, name)]
            assert mounts == [("volume", "across-socket", name == "across-service")], (name, mounts)
            host_config = engine.run("inspect", "--format", "{{.HostConfig.IpcMode}} {{.HostConfig.NetworkMode}}",
                                     name).stdout.split()  # fmt: skip
            assert host_config[0] in {"private", "shareable"} and host_config[1] == "none", (name, host_config)
        client.send("done")
        assert client.wait(60) == 0, "".join(client.stderr)
    finally:
        client.remove()


def test_a_killed_client_container_leaves_no_fd_or_mapping_in_the_service(
    engine: PrivateDockerd, shmbridge_image: BuiltImage
) -> None:
    slow = (*NULL_FULL, "--engine-option", "delay_ms=6000", "--workers", "2")
    service = start_service(engine, shmbridge_image.tag, "kill-service", "kill-socket", *slow)
    pid = service.pid
    baseline = sorted(shm_fds(pid)), sorted(shm_mappings(pid))
    baseline_count = _all_fds(pid)
    victim = start_client(engine, shmbridge_image.tag, "kill-client", "kill-socket", "in-flight", SOCKET)
    try:
        assert victim.next_json(timeout=120) == {"state": "submitted"}
        assert wait_until(lambda: len(shm_mappings(pid)) > len(baseline[1]), timeout=10), shm_mappings(pid)
        assert wait_until(lambda: metric(service.metrics_text(), "shmbridge_in_flight") == 1, timeout=20)
        engine.run("kill", "kill-client")  # the engine still holds the request for seconds
        assert victim.wait(60) != 0
    finally:
        victim.remove()
    # The in-flight request ends (the engine holds it 6 s), then the dead session's memory is gone.
    assert wait_until(lambda: sorted(shm_fds(pid)) == baseline[0], timeout=30), shm_fds(pid)
    assert wait_until(lambda: sorted(shm_mappings(pid)) == baseline[1], timeout=10), shm_mappings(pid)
    assert wait_until(lambda: _all_fds(pid) <= baseline_count, timeout=10), os.listdir(f"/proc/{pid}/fd")
    assert service.ready(), service.logs()


def test_a_restarted_service_container_fails_typed_falls_back_then_returns_to_shared_memory(
    engine: PrivateDockerd, shmbridge_image: BuiltImage
) -> None:
    port = free_port()
    service = start_service(
        engine, shmbridge_image.tag, "restart-service", "restart-socket", *NULL_FULL, network="host", port=port
    )
    url = f"http://127.0.0.1:{port}"
    client = start_client(
        engine, shmbridge_image.tag, "restart-client", "restart-socket", "steps", SOCKET, url, network="host"
    )

    def call(name: str) -> dict[str, object]:
        client.send(name)
        return client.next_json(timeout=60)

    try:
        assert client.next_json(timeout=120) == {"state": "ready"}
        for name in ("auto", "shm"):
            assert call(name) == {"client": name, "mode": "shared_memory", "checksum_matches": True}
        engine.run("stop", "--time=20", "restart-service")
        down = call("shm")
        assert down["client"] == "shm" and down["typed"] is True, down  # a ShmBridgeError, never an OSError
        engine.run("start", "restart-service")
        service.wait_ready()
        # The auto client's old session is dead but HTTP answers: that call falls back, then the session returns.
        assert call("auto") == {"client": "auto", "mode": "http_fallback", "checksum_matches": True}
        seen = [call("auto")]
        while seen[-1].get("mode") != "shared_memory" and len(seen) < 40:
            time.sleep(0.25)  # the reconnect waits for the client's backoff
            seen.append(call("auto"))
        assert seen[-1] == {"client": "auto", "mode": "shared_memory", "checksum_matches": True}, seen
        assert {entry["mode"] for entry in seen} <= {"http_fallback", "shared_memory"}, seen
        assert call("shm") == {"client": "shm", "mode": "shared_memory", "checksum_matches": True}
        client.send("quit")
        assert client.wait(60) == 0, "".join(client.stderr)
    finally:
        client.remove()
