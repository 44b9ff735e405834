"""Quick start (asyncio): many images at once over one ``shmbridge.AsyncClient``.

Concurrent calls share one session and its pool of shared-memory slots; a call that finds every slot busy
waits for one. Reads ``$SHMBRIDGE_URL`` and ``$SHMBRIDGE_SOCKET_PATH`` like the blocking example.
"""

import asyncio
import os

import numpy as np

import shmbridge

url = os.environ.get("SHMBRIDGE_URL", "http://127.0.0.1:8080")


async def main() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(8)]

    async with shmbridge.AsyncClient(url) as client:
        results = await asyncio.gather(*(client.ocr(image) for image in images))
        modes = sorted({result.communication_mode for result in results})
        print(f"{len(results)} images over {', '.join(modes)}")

        # The same, with a bound on how many run at once and results in input order.
        batch = await client.ocr_batch(images, max_concurrency=4, languages=["en-US"])
        print(f"batch of {len(batch)}: {sum(r.total_time_ms for r in batch) / len(batch):.1f} ms each on average")

        info = await client.info()
        print(f"engine {info['engine']['name']}, protocol {info['protocol_version']}")


asyncio.run(main())
