"""``python -m shmbridge.bench.roundtrip`` end to end, briefly: every size and path printed, positive p50s,
the iceoryx2 reference row where iceoryx2 is installed (and a line saying why not where it is not), and
a first line that says what the measured service did about idle CPUs (what it reported, not what the
flag asked for). No timing is asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from shmbridge.bench.iceoryx import unavailable_reason
from shmbridge.service.wakeups import CPU_DMA_LATENCY, polling_state_missing

SIZES = ("64x64", "1920x1080", "3840x2160")
PATHS = ("in-place", "client", "copied-in", "copied-warm", "copied-hot", "copy-in", "copy-warm", "copy-hot")
ROW = re.compile(r"^\s*(\S+)\s+(\S+)\s+([\d.]+)\s+([\d.]+)$")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shmbridge.bench.roundtrip", *args], capture_output=True, text=True, timeout=180
    )


def _roundtrip(*flags: str) -> list[str]:
    done = _run("--rounds", "20", "--warmup", "5", *flags)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _rows(lines: list[str]) -> dict[tuple[str, str], tuple[float, float]]:
    rows = {}
    for line in lines:
        if match := ROW.match(line):
            rows[(match[1], match[2])] = (float(match[3]), float(match[4]))
    return rows


def test_every_size_and_path_is_measured_with_the_reference_where_it_can_run() -> None:
    lines = _roundtrip()
    assert lines[0].endswith("low-latency off"), lines[0]
    rows = _rows(lines)
    expected = PATHS if unavailable_reason() else (*PATHS, "iceoryx2")
    assert set(rows) == {(size, path) for size in SIZES for path in expected}, lines
    assert all(p50 > 0 and p99 >= p50 for p50, p99 in rows.values())
    shells = [line for line in lines if "(Client.ocr against SessionClient.submit)" in line]
    assert [line.split(":")[0] for line in shells] == list(SIZES), lines
    floors = [line for line in lines if "copied p50 against the bare copy's in the same cache state" in line]
    assert [line.split(":")[0] for line in floors] == list(SIZES), lines
    if unavailable_reason():
        assert any(line.startswith("no iceoryx2 reference row: ") for line in lines), lines
    else:
        ratios = [line for line in lines if "x the iceoryx2 p50 of the same rounds" in line]
        assert [line.split(":")[0] for line in ratios] == list(SIZES), lines


def test_the_reference_can_be_left_out() -> None:
    lines = _roundtrip("--no-reference")
    assert {path for _size, path in _rows(lines)} == set(PATHS), lines
    assert "no iceoryx2 reference row: left out (--no-reference)" in lines, lines


@pytest.mark.skipif(
    not os.access(CPU_DMA_LATENCY, os.W_OK) or polling_state_missing() is not None,
    reason="the low-latency mode cannot act here",
)
def test_the_low_latency_run_says_the_service_had_the_mode_on() -> None:
    lines = _roundtrip("--low-latency")
    assert lines[0].endswith("low-latency on"), lines[0]
    assert {size for size, _path in _rows(lines)} == set(SIZES)


def test_low_latency_against_a_running_service_is_refused() -> None:
    done = _run("--socket", "/nonexistent.sock", "--low-latency")
    assert done.returncode == 2 and "--low-latency" in done.stderr


@pytest.mark.parametrize("flags", [("--rounds", "0"), ("--warmup", "-1")])
def test_rounds_and_warmup_out_of_range_are_refused(flags: tuple[str, str]) -> None:
    done = _run(*flags)
    assert done.returncode == 2 and "--rounds must be at least 1" in done.stderr
