"""Zero-copy frames, many threads and tasks on one client, and what happens when every slot is lent."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import numpy as np
import pytest

import shmbridge
from shmbridge import Client, InvalidRequest, RequestTimeout, Timeouts
from shmbridge.client.base import ClientResult
from tests.support.service import RunningService, metric

from .helpers import full_checksum, image


def test_a_frame_round_trip_copies_zero_bytes(own_service: RunningService) -> None:
    rng = np.random.default_rng(5)
    with Client(own_service.url) as client:
        with client.frame(360, 640) as frame:
            for _ in range(3):
                frame[:] = rng.integers(0, 256, frame.shape, dtype=np.uint8)  # render in place
                result = client.ocr(frame)
                assert result.communication_mode == "shared_memory"
                assert result.checksum == full_checksum(frame)
            crop = frame[10:300, 20:500]  # a view into the slot: by reference too, with its row pitch
            assert client.ocr(crop).checksum == full_checksum(crop)
        with client.frame(100, 200, 1) as gray:
            gray[:] = 77
            assert client.ocr(gray).checksum == full_checksum(gray)
    text = own_service.metrics_text()
    assert metric(text, "shmbridge_bytes_copied_total", mode="shm_session") == 0
    assert metric(text, "shmbridge_zero_copy_requests_total", mode="shm_session") == 5
    assert metric(text, "shmbridge_requests_total", mode="shm_session", outcome="ok") == 5


def test_a_frame_result_is_one_whole_client_result(service: RunningService) -> None:
    """The session's reply is validated once, straight into ``ClientResult``: every field set, as a result
    shaped from an ``OcrResult`` had them, and ``total_time_ms`` the caller's wait."""
    with Client(service.url, socket=service.socket_path, mode="shm") as client, client.frame(20, 30) as frame:
        frame[:] = 9
        result = client.ocr(frame)
        assert type(result) is ClientResult and result.communication_mode == "shared_memory"
        assert result.model_fields_set == set(ClientResult.model_fields)
        assert 0 < result.total_time_ms < 30_000 and result.checksum == full_checksum(frame)
        result.warnings.append("mine")  # each result has its own lists
        assert client.ocr(frame).warnings == []
        assert client.ocr(frame, pixel_format="bgr").checksum == full_checksum(frame)


def test_a_frame_changed_in_place_is_checked_again(service: RunningService) -> None:
    """A frame is checked once, when lent; one whose shape or dtype was changed in place since is checked
    as any other array (the lent one's reference is not reused)."""
    with Client(service.url, socket=service.socket_path, mode="shm") as client, client.frame(20, 30, 3) as frame:
        frame[:] = 5
        assert client.ocr(frame).checksum == full_checksum(frame)
        frame.shape = (20, 90)  # the same bytes, seen as one gray channel
        result = client.ocr(frame)
        assert result.checksum == full_checksum(frame) and result.width == 90
        frame.shape = (20, 30, 3)
        frame.dtype = np.int8
        with pytest.raises(InvalidRequest, match="uint8"):
            client.ocr(frame)


def test_in_http_mode_a_frame_is_a_plain_array(service: RunningService) -> None:
    with Client(service.url, mode="http") as client, client.frame(30, 40, 4) as frame:
        assert frame.shape == (30, 40, 4) and frame.flags.writeable and frame.base is None
        frame[:] = 3
        result = client.ocr(frame)
        assert result.communication_mode == "http"
        assert result.checksum == full_checksum(frame)


def test_eight_threads_share_one_client(service: RunningService) -> None:
    errors: list[BaseException] = []
    shapes = [(48, 64, 3), (120, 90, 4), (33, 77, 1), (200, 300, 3)]

    def worker(n: int) -> None:
        try:
            for i in range(12):
                h, w, c = shapes[(n + i) % len(shapes)]
                array = image(n * 100 + i, h, w, c)
                if i % 3 == 0:
                    with client.frame(h, w, c) as frame:
                        frame[:] = array
                        result = client.ocr(frame)
                else:
                    result = client.ocr(array)
                assert result.communication_mode == "shared_memory"
                assert result.checksum == full_checksum(array)
        except BaseException as exc:
            errors.append(exc)

    with Client(service.url) as client:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors[:3]


def test_thirty_two_tasks_share_one_async_client(service: RunningService) -> None:
    async def main() -> None:
        async with shmbridge.AsyncClient(service.url) as client:

            async def one(n: int) -> None:
                for i in range(4):
                    array = image(n * 10 + i, 40 + n, 50 + i, (1, 3, 4)[n % 3])
                    result = await client.ocr(array)
                    assert result.communication_mode == "shared_memory"
                    assert result.checksum == full_checksum(array)

            await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(32))), 60)

    asyncio.run(main())


def test_with_every_slot_lent_callers_wait_then_time_out(service: RunningService) -> None:
    timeouts = Timeouts(request=10.0, session=0.3)
    with Client(service.url, timeout=timeouts) as client, contextlib.ExitStack() as held:
        slots = client.info()["limits"]["slots_per_segment"]
        for _ in range(slots):
            held.enter_context(client.frame(64, 64))
        with pytest.raises(RequestTimeout), client.frame(64, 64):
            pass
        with pytest.raises(RequestTimeout):  # a copy needs a slot too, and does not fall back for it
            client.ocr(image(1, 64, 64))
        # A caller that waits gets the slot as soon as one comes back.
        result: list[object] = []
        waiter = threading.Thread(target=lambda: result.append(client.ocr(image(2, 64, 64), timeout=10.0)))
        waiter.start()
        held.close()  # gives every frame back
        waiter.join(timeout=30)
        assert not waiter.is_alive()
        assert result[0].communication_mode == "shared_memory"  # type: ignore[attr-defined]


def test_async_callers_wait_for_slots_and_time_out_cleanly(service: RunningService) -> None:
    async def main() -> None:
        timeouts = Timeouts(request=10.0, session=0.3)
        async with shmbridge.AsyncClient(service.url, timeout=timeouts) as client:
            slots = (await client.info())["limits"]["slots_per_segment"]
            async with contextlib.AsyncExitStack() as held:
                for _ in range(slots):
                    await held.enter_async_context(client.frame(64, 64))
                outcomes = await asyncio.gather(*(client.ocr(image(i, 64, 64)) for i in range(3)),
                                                return_exceptions=True)  # fmt: skip
                assert all(isinstance(outcome, RequestTimeout) for outcome in outcomes), outcomes
                waiting = [asyncio.ensure_future(client.ocr(image(i, 64, 64), timeout=10.0)) for i in range(6)]
                await asyncio.sleep(0.1)
                assert not any(task.done() for task in waiting)
            results = await asyncio.wait_for(asyncio.gather(*waiting), 30)  # the frames went back: all served
            assert {r.communication_mode for r in results} == {"shared_memory"}

    asyncio.run(main())
