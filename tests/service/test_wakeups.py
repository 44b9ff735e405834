"""Low-latency mode: the PM QoS hold on idle CPUs, engaged by busy sessions and withdrawn when they go quiet.

The pure parts run against an ordinary file standing in for ``/dev/cpu_dma_latency`` (the class writes
the same int32 and closes the same descriptor). The end-to-end test runs a real service with
``--low-latency`` and reads the kernel's effective CPU latency limit back from the real device, which
needs root (CI and this machine run as root; elsewhere it skips and says why).
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from shmbridge.client.session import SessionClient
from shmbridge.service.wakeups import CPU_DMA_LATENCY, CpuWakeupHold
from tests.support.service import metric, running_service, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PM QoS requests exist on Linux only")


@pytest.fixture
def hold(tmp_path: Path):  # type: ignore[no-untyped-def]
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    hold = CpuWakeupHold(0.2, path=device).start()
    yield hold
    hold.close()


def test_a_touch_engages_the_request_and_quiet_withdraws_it(hold: CpuWakeupHold) -> None:
    assert not hold.held and hold.unavailable is None
    hold.touch()
    assert hold.held
    assert hold.path.read_bytes() == struct.pack("=i", 0)  # the value the kernel reads: 0 µs
    assert wait_until(lambda: not hold.held, timeout=5.0, interval=0.01)
    assert hold.engagements == 1


def test_touches_within_the_hold_keep_one_engagement(hold: CpuWakeupHold) -> None:
    for _ in range(20):  # 20 touches 20 ms apart: 0.4 s of activity, twice the hold
        hold.touch()
        assert hold.held
        wait_until(lambda: False, timeout=0.02, interval=0.01)
    assert hold.engagements == 1
    assert wait_until(lambda: not hold.held, timeout=5.0, interval=0.01)
    hold.touch()  # a new burst engages again
    assert hold.held and hold.engagements == 2


def test_close_withdraws_at_once_and_later_touches_do_nothing(hold: CpuWakeupHold) -> None:
    hold.touch()
    assert hold.held
    hold.close()
    assert not hold.held
    hold.touch()
    assert not hold.held and hold.engagements == 1


def test_a_device_that_cannot_be_opened_leaves_the_mode_off_with_the_reason(tmp_path: Path) -> None:
    hold = CpuWakeupHold(0.2, path=tmp_path / "missing" / "cpu_dma_latency").start()
    try:
        assert hold.unavailable is not None and "cannot open" in hold.unavailable
        hold.touch()
        assert not hold.held
        status = hold.status()
        assert status["available"] is False and status["reason"] == hold.unavailable
    finally:
        hold.close()


def test_a_hold_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="hold"):
        CpuWakeupHold(0)


def _kernel_cpu_latency_limit() -> int:
    """The machine's effective CPU wake-up latency limit in µs, as the kernel reports it."""
    with open(CPU_DMA_LATENCY, "rb") as device:
        return struct.unpack("=i", device.read(4))[0]


@pytest.mark.skipif(not os.access(CPU_DMA_LATENCY, os.W_OK), reason=f"{CPU_DMA_LATENCY} is not writable here")
def test_the_service_holds_idle_cpus_polling_while_a_session_is_busy(tmp_path: Path) -> None:
    baseline = _kernel_cpu_latency_limit()
    if baseline == 0:
        pytest.skip("another process already holds the CPU latency at 0 µs")
    with running_service(tmp_path, "--low-latency", "--low-latency-hold", "0.5", "--no-warm-up") as service:
        info = httpx.get(f"{service.url}/api/v1/bridge/info", timeout=10).json()["low_latency"]
        assert info["enabled"] and info["available"] and not info["held"]
        assert _kernel_cpu_latency_limit() == baseline
        with SessionClient(service.socket_path, timeout=10) as session, session.lease(64, 64) as lease:
            lease.frame(64, 64)[:] = 7
            session.submit(lease)
            assert _kernel_cpu_latency_limit() == 0  # held from the request on
            info = httpx.get(f"{service.url}/api/v1/bridge/info", timeout=10).json()["low_latency"]
            assert info["held"] and info["engagements"] == 1
            assert metric(service.metrics_text(), "shmbridge_cpu_wakeup_hold") == 1.0
        assert wait_until(lambda: _kernel_cpu_latency_limit() == baseline, timeout=10.0)
        assert metric(service.metrics_text(), "shmbridge_cpu_wakeup_hold") == 0.0
    assert _kernel_cpu_latency_limit() == baseline


def test_without_the_flag_the_service_leaves_the_cpus_alone(tmp_path: Path) -> None:
    with running_service(tmp_path, "--no-warm-up") as service:
        with SessionClient(service.socket_path, timeout=10) as session:
            frame = np.full((64, 64, 3), 7, dtype=np.uint8)
            session.ocr_copy(frame)
        info = httpx.get(f"{service.url}/api/v1/bridge/info", timeout=10).json()["low_latency"]
        assert info == {"enabled": False}
        assert metric(service.metrics_text(), "shmbridge_cpu_wakeup_hold") == 0.0


def test_the_mode_can_be_turned_on_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The systemd drop-in in docs/deployment.md turns it on with SHMBRIDGE_LOW_LATENCY, not a flag."""
    from shmbridge.config import ServiceConfig

    monkeypatch.setenv("SHMBRIDGE_LOW_LATENCY", "true")
    monkeypatch.setenv("SHMBRIDGE_LOW_LATENCY_HOLD", "0.5")
    config = ServiceConfig.load(engine="null")
    assert config.low_latency is True and config.low_latency_hold == 0.5
    monkeypatch.setenv("SHMBRIDGE_LOW_LATENCY_HOLD", "0")
    with pytest.raises(ValueError, match="low_latency_hold"):
        ServiceConfig.load(engine="null")


@pytest.mark.skipif(not os.access(CPU_DMA_LATENCY, os.W_OK), reason=f"{CPU_DMA_LATENCY} is not writable here")
def test_a_killed_service_leaves_no_request_behind(tmp_path: Path) -> None:
    """The request lives in an open descriptor: the kernel drops it with the process, even on SIGKILL."""
    baseline = _kernel_cpu_latency_limit()
    if baseline == 0:
        pytest.skip("another process already holds the CPU latency at 0 µs")
    with running_service(tmp_path, "--low-latency", "--low-latency-hold", "30", "--no-warm-up", http=False) as service:
        with SessionClient(service.socket_path, timeout=10) as session, session.lease(64, 64) as lease:
            lease.frame(64, 64)[:] = 7
            session.submit(lease)
            assert _kernel_cpu_latency_limit() == 0
            service.process.kill()
            service.process.wait(10)
        assert _kernel_cpu_latency_limit() == baseline
