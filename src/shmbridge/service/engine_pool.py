"""The engine pool: ``size`` instances of one engine, each lent to one thread at a time.

One instance per worker keeps engines free of locks and keeps per-call state from leaking between
requests (ARCHITECTURE.md, decision 4). The pool owns the instances, their worker threads, the thread
budget each instance's inference threads come from (``engines.threads``), and the one call that runs an
engine on an image (``run_sync``: recognise, then reading order, timed). ``ServiceCore`` decides when a
request may run; this module must never admit, queue or time out a request, or know where pixels live.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..engines import Engine, EngineOutput, create_engine, engine_class
from ..engines.results import reading_order
from ..engines.threads import with_thread_budget
from ..models import OcrOptions, PixelFormat

#: The engine's part of a request, ready to run on an engine thread: its output and the seconds it took.
EngineWork = Callable[[], tuple[EngineOutput, float]]

log = logging.getLogger("shmbridge.core")


class EnginePool:
    """``size`` engine instances, each lent to one worker thread at a time.

    One instance per worker keeps engines free of locks and keeps per-call state from leaking between
    requests. Non-blocking engines (null) are called inline on the caller's thread. Each instance's
    inference threads come from the thread budget (``engines.threads``) unless ``options`` set them.
    """

    def __init__(self, name: str, options: dict[str, Any], size: int) -> None:
        self.name = name
        options = with_thread_budget(options, engine_class(name).thread_option, size)
        self._options = options
        self._instances: queue.SimpleQueue[Engine] = queue.SimpleQueue()
        self._all: list[Engine] = []
        try:
            for _ in range(size):
                engine = create_engine(name, **options)
                self._all.append(engine)
                self._instances.put(engine)
        except BaseException:
            self.close()
            raise
        self.size = size
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"engine-{name}")
        self.blocking = any(engine.blocking for engine in self._all)
        self.native_formats = self._all[0].native_formats
        self.accepts_strides = self._all[0].accepts_strides

    def capabilities(self) -> dict[str, Any]:
        return self._all[0].capabilities()

    def warm_up(self) -> None:
        """Warm every instance (in parallel on the pool) so no first request pays the model load."""
        futures = [self.executor.submit(engine.warm_up) for engine in self._all]
        for future in futures:
            future.result()

    def run_sync(self, image: np.ndarray, fmt: PixelFormat, options: OcrOptions) -> tuple[EngineOutput, float]:
        """Recognise and put the lines in reading order (on the engine's thread, counted as post-processing);
        returns the output and the seconds both took."""
        engine = self._take()
        try:
            started = time.perf_counter()
            output = engine.recognize(image, fmt, options)
            recognized = time.perf_counter()
            output.lines = reading_order(output.lines)
            done = time.perf_counter()
            output.stages["postprocess"] = output.stages.get("postprocess", 0.0) + (done - recognized)
            return output, done - started
        finally:
            self._instances.put(engine)

    def _take(self) -> Engine:
        """An instance for this call. Blocking engines wait for one of the pool's; a non-blocking engine
        is called inline by whichever thread has the request (the loop, any session thread), so when all
        are busy it gets one more instance instead of making that thread (maybe the event loop) wait."""
        if self.blocking:
            return self._instances.get()
        try:
            return self._instances.get_nowait()
        except queue.Empty:
            engine = create_engine(self.name, **self._options)
            self._all.append(engine)
            return engine

    def close(self) -> None:
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        for engine in self._all:
            try:
                engine.close()
            except Exception:  # pragma: no cover - best effort at shutdown
                log.exception("engine close failed")
        self._all.clear()
