"""The adaptive polling window of a waiting session client (client/spin.py): pure rules, then one real
session that must still time out and still answer with polling on and off."""

from __future__ import annotations

import numpy as np
import pytest

from shmbridge.client.session import SessionClient
from shmbridge.client.spin import DEFAULT_SPIN, GROW_START, SpinWindow
from shmbridge.engines.null import checksum
from tests.support.service import RunningService


def test_the_window_starts_at_the_limit() -> None:
    assert SpinWindow().window == DEFAULT_SPIN
    assert SpinWindow(50e-6).window == 50e-6


def test_slow_replies_close_the_window_and_fast_ones_reopen_it() -> None:
    spin = SpinWindow(200e-6)
    waits = 0
    while spin.window:  # a slow engine: every reply after 100 ms
        spin.record(0.1)
        waits += 1
        assert waits < 10, "the window must close within a few slow replies"
    assert spin.window == 0.0
    spin.record(50e-6)  # a fast reply after blocking: polling would have paid
    assert spin.window == GROW_START
    for _ in range(10):
        spin.record(50e-6)
    assert spin.window == 200e-6  # doubled up to the limit, never past it


def test_a_reply_at_the_limit_counts_as_fast() -> None:
    spin = SpinWindow(200e-6)
    spin.record(200e-6)
    assert spin.window == 200e-6
    spin.record(200.1e-6)
    assert spin.window == 100e-6


def test_a_zero_limit_never_polls() -> None:
    spin = SpinWindow(0.0)
    for waited in (1e-6, 1.0, 5e-6):
        spin.record(waited)
        assert spin.window == 0.0


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="polling limit"):
        SpinWindow(-1e-6)


@pytest.mark.parametrize("spin", [0.0, DEFAULT_SPIN])
def test_sessions_answer_with_polling_on_and_off(service: RunningService, spin: float) -> None:
    rng = np.random.default_rng(3)
    with SessionClient(service.socket_path, timeout=10, spin=spin) as session, session.lease(64, 96) as lease:
        frame = lease.frame(64, 96)
        for _ in range(50):
            frame[:] = rng.integers(0, 256, frame.shape, dtype=np.uint8)
            assert session.submit(lease).checksum == checksum(frame, "full")
