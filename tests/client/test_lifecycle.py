"""Lifecycle (unopened → opened → closed), misuse, and that a closed client leaves nothing behind."""

from __future__ import annotations

import asyncio
import gc

import pytest

import shmbridge
from shmbridge import Client, Lifecycle, UsageError
from tests.support.service import RunningService

from .helpers import full_checksum, image, process_snapshot


def test_lifecycle_is_explicit_and_a_closed_client_refuses_calls(service: RunningService) -> None:
    client = Client(service.url)
    assert client.state is Lifecycle.UNOPENED
    assert client.ocr(image(1)).communication_mode == "shared_memory"  # the first call opens it
    assert client.state is Lifecycle.OPENED
    client.close()
    client.close()  # twice is fine
    assert client.state is Lifecycle.CLOSED
    for call in (lambda: client.ocr(image(1)), client.health, client.info, client.metrics, client.open):
        with pytest.raises(UsageError):
            call()
    with pytest.raises(UsageError), client.frame(8, 8):
        pass
    assert issubclass(UsageError, RuntimeError)

    async def main() -> None:
        async with shmbridge.AsyncClient(service.url) as aclient:
            assert aclient.state is Lifecycle.OPENED
        assert aclient.state is Lifecycle.CLOSED
        with pytest.raises(UsageError):
            await aclient.ocr(image(1))

    asyncio.run(main())


def test_nothing_leaks_after_close(service: RunningService) -> None:
    Client(service.url, mode="http").close()  # warm imports and lazy module state before the snapshot
    gc.collect()
    fds, threads, maps = process_snapshot()
    assert maps == 0

    for _ in range(2):
        with Client(service.url) as client:
            for size in (48, 200, 700):  # three size classes: three segments mapped
                array = image(size, size, size)
                assert client.ocr(array).checksum == full_checksum(array)
            with client.frame(64, 64) as frame:
                frame[:] = 1
                client.ocr(frame)
                client.ocr(frame[1:10, 1:10])
            del frame  # a frame is a view of the mapping: a caller holding one keeps the pages
            assert client.ocr(image(3), timeout=5).communication_mode == "shared_memory"
            assert process_snapshot()[2] >= 3

        async def main() -> None:
            async with shmbridge.AsyncClient(service.url) as aclient:
                await asyncio.gather(*(aclient.ocr(image(i, 100, 120)) for i in range(8)))
                async with aclient.frame(32, 32) as frame:
                    await aclient.ocr(frame)

        asyncio.run(main())

    gc.collect()
    after_fds, after_threads, after_maps = process_snapshot()
    assert after_maps == 0
    assert after_threads == threads
    assert after_fds == fds
