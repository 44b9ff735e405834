"""The sidecar layout (deploy/docker-compose.yml, variant a) without Docker: service and client each in
their own mount, network and IPC namespaces, sharing one directory, and real OCR over shared memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.namespaces import INSIDE, isolated_command, namespace_support

REPO = Path(__file__).resolve().parents[2]
_NAMESPACES = namespace_support()


def _child_pid(pid: int) -> int | None:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        found = children.read_text().split()
    except OSError:
        return None
    return int(found[0]) if found else None


def _namespaces(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("mnt", "net", "ipc")}


@pytest.mark.skipif(_NAMESPACES is not None, reason=f"no namespaces here: {_NAMESPACES}")
def test_sidecar_service_and_client_share_only_a_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o770)
    socket_inside = f"{INSIDE}/sock/ocr.sock"
    service_argv = [sys.executable, "-m", "shmbridge.cli", "serve", "--engine", "rapidocr", "--workers", "1",
                    "--socket", socket_inside, "--port", "8080"]  # fmt: skip
    log_path = tmp_path / "service.log"
    with open(log_path, "wb") as log:
        service = subprocess.Popen(
            isolated_command(shared, service_argv, workdir=str(REPO), keep=(REPO, Path(sys.prefix))),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )
    try:
        deadline = time.monotonic() + 120
        while not (shared / "sock" / "ocr.sock").exists():
            assert service.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the isolated service did not start"
            time.sleep(0.1)
        service_pid = _child_pid(service.pid)
        expected = "Hello from shmbridge 42"
        client = subprocess.run(
            isolated_command(
                shared,
                [sys.executable, str(REPO / "tests/deploy/isolated_ocr_client.py"), socket_inside, expected],
                workdir=str(REPO),
                keep=(REPO, Path(sys.prefix)),
            ),
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"},
        )
        assert client.returncode == 0, client.stderr + log_path.read_text()
        report = json.loads(client.stdout.strip().splitlines()[-1])
        assert report["engine"] == "rapidocr"
        assert report["text"].replace(" ", "") == expected.replace(" ", ""), report["text"]
        assert report["dev_shm"] == []
        # Three parties, three sets of namespaces: the test, the service, the client.
        ours = _namespaces(os.getpid())
        assert all(report["namespaces"][ns] != ours[ns] for ns in ours)
        if service_pid is not None:
            theirs = _namespaces(service_pid)
            assert all(theirs[ns] != ours[ns] and theirs[ns] != report["namespaces"][ns] for ns in ours)
    finally:
        # SIGTERM the service itself (unshare would answer its own SIGTERM by killing it outright).
        inner = _child_pid(service.pid)
        os.kill(inner, signal.SIGTERM) if inner else service.send_signal(signal.SIGTERM)
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(10)
    assert not (shared / "sock" / "ocr.sock").exists(), "the service did not remove its socket on SIGTERM"
