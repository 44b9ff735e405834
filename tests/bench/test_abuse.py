"""``python -m shmbridge.bench.abuse`` runs every attack against a live service, briefly, and says the
service survived within its bounds. Latency figures are reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the abuse script reads /proc")
def test_the_abuse_script_runs_every_attack_and_the_service_survives(tmp_path: Path) -> None:
    report_path = tmp_path / "abuse.json"
    command = [sys.executable, "-m", "shmbridge.bench.abuse", "--quiet-seconds", "1", "--attack-seconds", "2",
               "--truncate-seconds", "2", "--json", str(report_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    phases = [row["phase"] for row in report["rows"]]
    assert phases == ["quiet", "alloc-churn", "fd-hoard", "trickle", "stalled-bodies", "tiff", "truncate",
                      "quiet-after"]  # fmt: skip
    for row in report["rows"]:
        assert row["service_alive"] and row.get("within_bounds", True), row
        assert row["requests"] > 0 and row["errors"] == 0, row  # the bystander was served throughout
    attacks = {row["phase"]: row["attack"] for row in report["rows"]}
    assert attacks["fd-hoard"].get("new session: Welcome") == 1, attacks["fd-hoard"]
    assert attacks["tiff"] and all(key.startswith(("status 413", "slowest")) for key in attacks["tiff"])
    assert "| phase |" in done.stdout
