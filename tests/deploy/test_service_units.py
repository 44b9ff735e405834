"""The host service units: the systemd unit is hardened and parses, the launchd plist parses.

Rules and how they are checked: ``tests/deploy/manifests.py`` and docs/deployment.md.
"""

from __future__ import annotations

import plistlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    PLIST,
    SERVICE_ID,
    SYSTEMD_UNIT,
    systemd_allowed_peers,
    systemd_directives,
)

# -- systemd and launchd ------------------------------------------------------------------------------


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
