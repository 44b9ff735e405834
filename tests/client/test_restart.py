"""The service dies under load: calls end with typed errors, and come back to shared memory after a restart."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import shmbridge
from shmbridge import Client, RetryPolicy, ShmBridgeError, Timeouts
from tests.support.service import RunningService, start_service

from .helpers import FULL, full_checksum, image, restart

TIMEOUTS = Timeouts(request=3.0, session=3.0, connect=0.5)
RETRY = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.5, jitter=0.1)
#: A call may take a session timeout, then a whole HTTP budget: anything longer is a hang.
NO_HANG = TIMEOUTS.session_timeout + TIMEOUTS.request + 5.0
MAX_CALLS = 5000


class Recorder:
    """What each call of the streams ended with, and how long it took. Thread-safe."""

    def __init__(self) -> None:
        self.records: list[tuple[object, float]] = []
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def add(self, outcome: object, seconds: float) -> None:
        with self._lock:
            self.records.append((outcome, seconds))

    def count(self, predicate, since: int = 0) -> int:  # type: ignore[no-untyped-def]
        with self._lock:
            return sum(1 for outcome, _ in self.records[since:] if predicate(outcome))

    def __len__(self) -> int:
        return len(self.records)

    def wait_for(self, predicate, at_least: int, since: int = 0, limit: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.count(predicate, since) >= at_least:
                return True
            time.sleep(0.02)
        return False


def _one(client: Client, i: int) -> object:
    array = image(i % 7)
    result = client.ocr(array)
    assert result.checksum == full_checksum(array)
    return result.communication_mode


def _sync_stream(client: Client, recorder: Recorder) -> None:
    for i in range(MAX_CALLS):
        if recorder.stop.is_set():
            return
        started = time.monotonic()
        try:
            outcome = _one(client, i)
        except Exception as exc:
            outcome = exc
        recorder.add(outcome, time.monotonic() - started)
        time.sleep(0.005)


def _async_stream(url: str, recorder: Recorder) -> None:
    async def worker(client: shmbridge.AsyncClient, offset: int) -> None:
        for i in range(MAX_CALLS):
            if recorder.stop.is_set():
                return
            started = time.monotonic()
            array = image((offset + i) % 7)
            try:
                result = await client.ocr(array)
                assert result.checksum == full_checksum(array)
                outcome: object = result.communication_mode
            except Exception as exc:
                outcome = exc
            recorder.add(outcome, time.monotonic() - started)
            await asyncio.sleep(0.005)

    async def main() -> None:
        async with shmbridge.AsyncClient(url, timeout=TIMEOUTS, retry=RETRY) as client:
            await asyncio.gather(*(worker(client, n) for n in range(4)))

    asyncio.run(main())


def test_a_killed_service_fails_calls_cleanly_and_a_restart_brings_shared_memory_back(tmp_path: Path) -> None:
    service: RunningService = start_service(tmp_path, *FULL)
    restarted: RunningService | None = None
    sync_calls, async_calls = Recorder(), Recorder()
    threads: list[threading.Thread] = []
    try:
        with Client(service.url, timeout=TIMEOUTS, retry=RETRY) as client:
            threads = [threading.Thread(target=_sync_stream, args=(client, sync_calls)) for _ in range(2)]
            threads.append(threading.Thread(target=_async_stream, args=(service.url, async_calls)))
            for thread in threads:
                thread.start()

            def shm(outcome: object) -> bool:
                return outcome == "shared_memory"

            def failed(outcome: object) -> bool:
                return isinstance(outcome, BaseException)

            assert sync_calls.wait_for(shm, 20) and async_calls.wait_for(shm, 20)
            service.stop(signal.SIGKILL)
            assert sync_calls.wait_for(failed, 2) and async_calls.wait_for(failed, 2)

            restarted = restart(service, tmp_path, *FULL)
            marks = len(sync_calls), len(async_calls)
            assert sync_calls.wait_for(shm, 5, since=marks[0]), sync_calls.records[-5:]
            assert async_calls.wait_for(shm, 5, since=marks[1]), async_calls.records[-5:]
            sync_calls.stop.set()
            async_calls.stop.set()
            for thread in threads:
                thread.join(timeout=NO_HANG * 2)
            assert not any(thread.is_alive() for thread in threads)
    finally:
        sync_calls.stop.set()
        async_calls.stop.set()
        service.stop(signal.SIGKILL)
        if restarted is not None:
            restarted.stop()
        for thread in threads:
            thread.join(timeout=30)

    for recorder in (sync_calls, async_calls):
        errors = [outcome for outcome, _ in recorder.records if isinstance(outcome, BaseException)]
        assert errors and all(isinstance(error, ShmBridgeError) for error in errors), errors[:3]
        assert max(seconds for _, seconds in recorder.records) < NO_HANG
        modes = {outcome for outcome, _ in recorder.records if isinstance(outcome, str)}
        assert modes <= {"shared_memory", "http_fallback"}
