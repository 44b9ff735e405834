"""Low-latency mode: the PM QoS hold on idle CPUs, engaged by busy sessions and withdrawn when they go quiet.

The pure parts run against an ordinary file standing in for ``/dev/cpu_dma_latency`` (the class writes
the same int32 and closes the same descriptor) and a small sysfs tree standing in for the cpuidle one; a
descriptor counts as held while ``/proc/self/fd`` links to that file. The end-to-end tests run a real
service with ``--low-latency`` and look at the service's own descriptors and at the kernel's effective CPU
latency limit read back from the real device, which needs root and a polling idle state (CI and this
machine have both; elsewhere they skip and say why).
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from shmbridge.client.session import SessionClient
from shmbridge.service.wakeups import CPU_DMA_LATENCY, CpuWakeupHold, polling_state_missing
from tests.support.service import metric, running_service, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PM QoS requests exist on Linux only")


def _cpuidle_tree(root: Path, driver: str = "haltpoll", state0: str | None = "POLL") -> Path:
    (root / "cpuidle").mkdir(parents=True)
    (root / "cpuidle" / "current_driver").write_text(driver + "\n")
    if state0 is not None:
        (root / "cpu0" / "cpuidle" / "state0").mkdir(parents=True)
        (root / "cpu0" / "cpuidle" / "state0" / "name").write_text(state0 + "\n")
    return root


def _open_descriptors(pid: int | str, target: Path) -> int:
    """How many of process ``pid``'s descriptors point at ``target``."""
    count = 0
    with contextlib.suppress(OSError):  # the process ended while we looked
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # a descriptor closed while we looked
                count += os.readlink(entry) == str(target)
    return count


@pytest.fixture
def device(tmp_path: Path) -> Path:
    path = tmp_path / "cpu_dma_latency"
    path.write_bytes(b"")
    return path


def _hold(device: Path, tmp_path: Path, hold: float = 0.2) -> CpuWakeupHold:
    return CpuWakeupHold(hold, path=device, sysfs=_cpuidle_tree(tmp_path / "sys")).start()


def test_a_touch_engages_the_request_and_quiet_withdraws_it(device: Path, tmp_path: Path) -> None:
    hold = _hold(device, tmp_path)
    try:
        assert not hold.held and hold.unavailable is None
        hold.touch()
        assert hold.held and _open_descriptors("self", device) == 1
        assert device.read_bytes() == struct.pack("=i", 0)  # the value the kernel reads: 0 µs
        assert wait_until(lambda: not hold.held, timeout=5.0, interval=0.01)
        assert _open_descriptors("self", device) == 0  # closed, not just forgotten
        assert hold.engagements == 1
    finally:
        hold.close()


def test_touches_within_the_hold_keep_one_engagement(device: Path, tmp_path: Path) -> None:
    hold = _hold(device, tmp_path, hold=1.0)  # a second of slack for a stalled machine between touches
    try:
        for _ in range(20):  # 20 touches 20 ms apart
            hold.touch()
            assert hold.held
            wait_until(lambda: False, timeout=0.02, interval=0.01)
        assert hold.engagements == 1 and _open_descriptors("self", device) == 1
        assert wait_until(lambda: not hold.held, timeout=5.0, interval=0.01)
        hold.touch()  # a new burst engages again
        assert hold.held and hold.engagements == 2
    finally:
        hold.close()


def test_many_threads_touching_while_it_closes_leave_nothing_open(device: Path, tmp_path: Path) -> None:
    hold = _hold(device, tmp_path, hold=0.05)
    stop = threading.Event()
    most = []

    def touch_in_a_loop() -> None:
        for _ in range(20_000):  # bounded: a few tenths of a second
            if stop.is_set():
                return
            hold.touch()

    threads = [threading.Thread(target=touch_in_a_loop) for _ in range(16)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        most.append(_open_descriptors("self", device))
        wait_until(lambda: False, timeout=0.01, interval=0.01)
    hold.close()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert max(most) <= 1  # never two requests at once
    assert not hold.held and _open_descriptors("self", device) == 0
    hold.touch()
    assert not hold.held


def test_close_withdraws_at_once_is_idempotent_and_later_touches_do_nothing(device: Path, tmp_path: Path) -> None:
    hold = _hold(device, tmp_path)
    hold.touch()
    assert hold.held
    hold.close()
    hold.close()
    assert not hold.held and _open_descriptors("self", device) == 0
    hold.touch()
    assert not hold.held and hold.engagements == 1
    assert hold.start() is hold and not hold.held  # starting a closed hold does nothing


def test_touch_before_start_and_close_before_start_do_nothing(device: Path, tmp_path: Path) -> None:
    hold = CpuWakeupHold(0.2, path=device, sysfs=_cpuidle_tree(tmp_path / "sys"))
    hold.touch()
    assert not hold.held and hold.status()["available"] is False
    hold.close()
    assert _open_descriptors("self", device) == 0


def test_a_device_that_cannot_be_opened_leaves_the_mode_off_with_the_reason(tmp_path: Path) -> None:
    hold = CpuWakeupHold(0.2, path=tmp_path / "missing" / "cpu_dma_latency", sysfs=_cpuidle_tree(tmp_path / "s"))
    hold.start()
    try:
        assert hold.unavailable is not None and "cannot open" in hold.unavailable
        hold.touch()
        assert not hold.held
        status = hold.status()
        assert status["available"] is False and status["reason"] == hold.unavailable
    finally:
        hold.close()


@pytest.mark.skipif(not os.access("/dev/full", os.W_OK), reason="no /dev/full")
def test_a_device_that_refuses_the_value_turns_the_mode_off(tmp_path: Path) -> None:
    hold = CpuWakeupHold(0.2, path=Path("/dev/full"), sysfs=_cpuidle_tree(tmp_path / "sys")).start()
    try:
        hold.touch()  # /dev/full opens, then every write fails with ENOSPC
        assert not hold.held and _open_descriptors("self", Path("/dev/full")) == 0
        assert hold.unavailable is not None and "refused" in hold.unavailable
    finally:
        hold.close()


@pytest.mark.parametrize(
    ("driver", "state0", "expected"),
    [
        ("haltpoll", "POLL", None),
        ("intel_idle", "POLL", None),
        ("none", None, "no cpuidle driver"),
        ("psci_idle", "WFI", "no polling state"),
    ],
)
def test_a_machine_without_a_polling_idle_state_is_told_apart(
    tmp_path: Path, device: Path, driver: str, state0: str | None, expected: str | None
) -> None:
    sysfs = _cpuidle_tree(tmp_path / "sys", driver, state0)
    reason = polling_state_missing(sysfs)
    assert reason is None if expected is None else expected in (reason or "")
    hold = CpuWakeupHold(0.2, path=device, sysfs=sysfs).start()
    try:
        hold.touch()
        assert hold.held is (expected is None)  # no request is held where it would do nothing
    finally:
        hold.close()


def test_a_hold_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="hold"):
        CpuWakeupHold(0)


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


# -- a real service on the real device --------------------------------------------------------------------


def _kernel_cpu_latency_limit() -> int:
    """The machine's effective CPU wake-up latency limit in µs, as the kernel reports it."""
    with open(CPU_DMA_LATENCY, "rb") as device:
        return struct.unpack("=i", device.read(4))[0]


def _others_hold_a_request() -> bool:
    """True when a process other than this one has the device open (tuned, a benchmark, ...)."""
    me = str(os.getpid())
    return any(_open_descriptors(pid, CPU_DMA_LATENCY) for pid in os.listdir("/proc") if pid.isdigit() and pid != me)


real_device = pytest.mark.skipif(
    not os.access(CPU_DMA_LATENCY, os.W_OK) or polling_state_missing() is not None,
    reason=f"{CPU_DMA_LATENCY} is not writable here, or idle CPUs have no polling state: {polling_state_missing()}",
)


@real_device
def test_the_service_holds_idle_cpus_polling_while_a_session_is_busy(tmp_path: Path) -> None:
    hold_s = "3"
    with running_service(tmp_path, "--low-latency", "--low-latency-hold", hold_s, "--no-warm-up") as service:
        info = httpx.get(f"{service.url}/api/v1/bridge/info", timeout=10).json()["low_latency"]
        assert info["enabled"] and info["available"] and not info["held"]
        assert _open_descriptors(service.pid, CPU_DMA_LATENCY) == 0
        with SessionClient(service.socket_path, timeout=10) as session, session.lease(64, 64) as lease:
            lease.frame(64, 64)[:] = 7
            session.submit(lease)
            assert _open_descriptors(service.pid, CPU_DMA_LATENCY) == 1  # held from the request on
            assert _kernel_cpu_latency_limit() == 0  # and the kernel applies it
            info = httpx.get(f"{service.url}/api/v1/bridge/info", timeout=10).json()["low_latency"]
            assert info["held"] and info["engagements"] == 1
            assert metric(service.metrics_text(), "shmbridge_cpu_wakeup_hold") == 1.0
        assert wait_until(lambda: _open_descriptors(service.pid, CPU_DMA_LATENCY) == 0, timeout=15.0)
        assert metric(service.metrics_text(), "shmbridge_cpu_wakeup_hold") == 0.0
        if not _others_hold_a_request():
            assert _kernel_cpu_latency_limit() != 0


@real_device
def test_a_killed_service_leaves_no_request_behind(tmp_path: Path) -> None:
    """The request lives in an open descriptor: the kernel drops it with the process, even on SIGKILL."""
    with running_service(tmp_path, "--low-latency", "--low-latency-hold", "30", "--no-warm-up", http=False) as service:
        with SessionClient(service.socket_path, timeout=10) as session, session.lease(64, 64) as lease:
            lease.frame(64, 64)[:] = 7
            session.submit(lease)
            assert _open_descriptors(service.pid, CPU_DMA_LATENCY) == 1
            assert _kernel_cpu_latency_limit() == 0
            service.process.kill()
            service.process.wait(10)
        if not _others_hold_a_request():
            assert _kernel_cpu_latency_limit() != 0


def test_without_the_flag_the_service_leaves_the_cpus_alone(tmp_path: Path) -> None:
    with running_service(tmp_path, "--no-warm-up") as service:
        with SessionClient(service.socket_path, timeout=10) as session:
            frame = np.full((64, 64, 3), 7, dtype=np.uint8)
            session.ocr_copy(frame)
            assert _open_descriptors(service.pid, CPU_DMA_LATENCY) == 0
        info = httpx.get(f"{service.url}/api/v1/bridge/info", timeout=10).json()["low_latency"]
        assert info == {"enabled": False}
        assert metric(service.metrics_text(), "shmbridge_cpu_wakeup_hold") == 0.0


def test_without_sessions_the_mode_says_it_can_do_nothing(tmp_path: Path) -> None:
    with running_service(tmp_path, "--low-latency", "--no-warm-up", shm=False) as service:
        info = httpx.get(f"{service.url}/api/v1/bridge/info", timeout=10).json()["low_latency"]
        assert info["enabled"] and not info["available"] and "sessions are off" in info["reason"]
