"""The service core's admission, in process with the real null engine made slow (``delay_ms``): pixels a
request borrowed come back however the request ends, including cancelled while it waited for an engine."""

from __future__ import annotations

import asyncio

import numpy as np

from shmbridge.config import ServiceConfig
from shmbridge.models import PixelFormat
from shmbridge.service.core import ServiceCore


def test_a_request_cancelled_while_queued_gives_its_pixels_back() -> None:
    config = ServiceConfig(engine="null", engine_options={"delay_ms": 300}, engine_workers=1, queue_size=4,
                           warm_up=False)  # fmt: skip
    core = ServiceCore(config)
    image = np.zeros((8, 8, 3), np.uint8)
    released: list[str] = []

    async def scenario() -> None:
        def request(name: str) -> asyncio.Task[object]:
            return asyncio.create_task(core.process(image, PixelFormat.RGB, mode="shm_session",
                                                    on_release=lambda: released.append(name)))  # fmt: skip

        running = request("running")
        await asyncio.sleep(0.05)  # it holds the one engine slot
        queued = request("queued")
        await asyncio.sleep(0.05)
        assert core.queued == 1
        queued.cancel()
        await asyncio.gather(queued, return_exceptions=True)
        assert released == ["queued"]  # at once: no engine thread ever had these pixels
        await running
        assert released == ["queued", "running"]
        assert core.queued == 0 and core.in_flight == 0

    try:
        asyncio.run(scenario())
    finally:
        core.close()
