"""The built image on a real engine: non-root, offline with its own models, hardened, healthy with rapidocr.

The image is deploy/Dockerfile built once per session by the engine's legacy builder on the debootstrap
base (``conftest.py``). These tests skip with the reason where Docker cannot run.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.deploy.conftest import BuiltImage
from tests.deploy.manifests import SERVICE_ID
from tests.support.containers import volume_mount
from tests.support.docker_engine import PrivateDockerd

pytestmark = pytest.mark.timeout(900)  # the first container test of a session also pays for the build

HARDENED = ("--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges", "--tmpfs=/tmp:size=16m,mode=1777")
HEALTHY_WITHIN = 300.0


def test_the_image_runs_as_its_user_and_its_engine_works_with_no_network(
    engine: PrivateDockerd, shmbridge_image: BuiltImage
) -> None:
    assert engine.run("image", "inspect", "--format", "{{.Config.User}}", shmbridge_image.tag).stdout.strip() == (
        f"{SERVICE_ID}:{SERVICE_ID}"
    )
    who = "import os; print(os.getuid(), os.getgid(), os.getgroups())"
    ids = engine.run("run", "--rm", "--network=none", "--no-healthcheck", shmbridge_image.tag, "python", "-c", who)
    assert ids.stdout.split() == [str(SERVICE_ID), str(SERVICE_ID), f"[{SERVICE_ID}]"]
    # The offline proof: the default engine reads a drawn card with networking off and no model download.
    proof = engine.run(
        "run", "--rm", "--network=none", "--no-healthcheck", *HARDENED, shmbridge_image.tag,
        "python", "/opt/shmbridge/check_offline.py", timeout=300,
    )  # fmt: skip
    assert "engine 'rapidocr' works offline: " in proof.stdout, proof.stdout + proof.stderr
    assert "offline" in proof.stdout.split("works offline: ", 1)[1].lower()


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_a_hardened_service_turns_healthy_with_rapidocr_and_answers_a_hardened_client(
    engine: PrivateDockerd, shmbridge_image: BuiltImage
) -> None:
    # The image's own HEALTHCHECK command, probed every 2 s instead of 15 s so the test does not wait.
    engine.run(
        "run", "-d", "--name=hardened-service", "--network=none", *HARDENED, volume_mount("hardened-socket"),
        "--health-interval=2s", "--health-start-period=240s", "--env=SHMBRIDGE_ENGINE_WORKERS=1",
        shmbridge_image.tag,
    )  # fmt: skip
    deadline = time.monotonic() + HEALTHY_WITHIN
    health = ""
    while time.monotonic() < deadline:
        health = engine.run("inspect", "--format", "{{.State.Health.Status}}", "hardened-service").stdout.strip()
        if health in {"healthy", "unhealthy"}:
            break
        time.sleep(1)
    logs = engine.run("logs", "--tail=30", "hardened-service", check=False)
    assert health == "healthy", logs.stdout + logs.stderr
    pid = int(engine.run("inspect", "--format", "{{.State.Pid}}", "hardened-service").stdout)
    status = _proc_status(pid)
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, status["CapEff"]
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Uid"].split()[0] == str(SERVICE_ID)
    root_options = [line.split()[5] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                    if line.split()[4] == "/"]  # fmt: skip
    assert root_options and root_options[0].split(",")[0] == "ro", root_options
    client = engine.run(
        "run", "--rm", "--network=none", "--no-healthcheck", *HARDENED, f"--user={SERVICE_ID}:{SERVICE_ID}",
        volume_mount("hardened-socket", read_only=True), shmbridge_image.tag,
        "python", "/opt/shmbridge/example_client.py", "--require-shm", timeout=300, check=False,
    )  # fmt: skip
    assert client.returncode == 0, client.stdout + client.stderr
    mode, text = client.stdout.strip().splitlines()[-1].removeprefix("test card: ").split(" ", 1)
    assert mode == "shared_memory"
    assert "shmbridge" in text.lower(), text  # rapidocr read the example client's card
