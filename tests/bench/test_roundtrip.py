"""``python -m shmbridge.bench.roundtrip`` end to end, briefly: every size and path printed, positive p50s,
and a first line that says what the measured service did about idle CPUs (what it reported, not what
the flag asked for). No timing is asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from shmbridge.service.wakeups import CPU_DMA_LATENCY, polling_state_missing

ROW = re.compile(r"^\s*(64x64|1920x1080|3840x2160)\s+(in-place|copied-in|copied-warm)\s+([\d.]+)\s+([\d.]+)$")


def _roundtrip(*flags: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "shmbridge.bench.roundtrip", "--rounds", "20", "--warmup", "5", *flags],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _rows(lines: list[str]) -> dict[tuple[str, str], tuple[float, float]]:
    rows = {}
    for line in lines:
        if match := ROW.match(line):
            rows[(match[1], match[2])] = (float(match[3]), float(match[4]))
    return rows


def test_every_size_and_path_is_measured() -> None:
    lines = _roundtrip()
    assert lines[0].endswith("low-latency off"), lines[0]
    rows = _rows(lines)
    assert len(rows) == 9, lines
    assert all(p50 > 0 and p99 >= p50 for p50, p99 in rows.values())


@pytest.mark.skipif(
    not os.access(CPU_DMA_LATENCY, os.W_OK) or polling_state_missing() is not None,
    reason="the low-latency mode cannot act here",
)
def test_the_low_latency_run_says_the_service_had_the_mode_on() -> None:
    lines = _roundtrip("--low-latency")
    assert lines[0].endswith("low-latency on"), lines[0]
    assert len(_rows(lines)) == 9


def test_low_latency_against_a_running_service_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shmbridge.bench.roundtrip", "--socket", "/nonexistent.sock", "--low-latency"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--low-latency" in done.stderr
