"""``Server(config)``: owns startup, the main loop and shutdown of one service process.

Both transports run on one event loop and share one ``ServiceCore`` (engine pool, admission, metrics).
Shutdown happens in a known order, on the first SIGTERM/SIGINT:

1. stop accepting: the session listener closes and its socket file is removed; HTTP stops listening;
2. drain: sessions and HTTP requests already admitted finish (up to ``drain_timeout``), sessions get BYE;
3. cancel what is left, release every mapping, close the engine pool;
4. restore the original signal handlers.

A second signal skips the drain. The CLI only builds a ``ServiceConfig``; everything else is here.

At start it raises the soft ``RLIMIT_NOFILE`` to the hard limit and sizes the fd budget both doors share
(``fd_budget``), and it warns when HTTP listens beyond loopback without a bearer token. It owns what
outlives the doors: the core, the memory and fd budgets, and the HTTP door's region registry, which it
makes before the app and closes last, once no engine thread can read a region.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from ..config import ServiceConfig
from ..memory import MemoryBudget
from .core import ServiceCore
from .fd_budget import Descriptors, open_fd_count, raise_nofile_limit
from .http.connections import budgeted_protocol
from .http.regions import RegionRegistry
from .sessions import SessionServer
from .waiting import wait_until

log = logging.getLogger("shmbridge.server")
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ListenError(OSError):
    """The HTTP address could not be bound (taken, privileged, not an address of this host)."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.host = host
        self.port = port


def bind_http(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn, so that a taken port is one typed error before anything starts
    (uvicorn's own bind logs a traceback and calls ``sys.exit``)."""
    # The family as uvicorn chooses it for a host it binds itself: IPv6 for an address with a colon.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:  # socket.gaierror included: a host name that does not resolve
        sock.close()
        raise ListenError(host, port, exc) from None
    return sock


class Server:
    """One shmbridge service: session server and/or HTTP app on one loop."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.core: ServiceCore | None = None
        self.sessions: SessionServer | None = None
        self.budget = MemoryBudget(config.total_bytes, config.max_sessions)
        self.fds: Descriptors | None = None  # sized at start, once the limit is raised
        self.regions: RegionRegistry | None = None  # HTTP's named regions: made with the app, closed last
        self._http: Any = None
        self._http_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._force = False
        self.engine_hung = False  # shutdown left an engine thread running: exit without joining it
        self.started = asyncio.Event()

    def run(self) -> None:
        """Blocking entry point for the CLI."""
        asyncio.run(self.serve())

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        # Bound first: a taken port fails before anything starts (engines, the socket, the shutdown log).
        listener = bind_http(self.config.http_host, self.config.http_port) if self.config.http_enabled else None
        with self._signals(loop):
            try:
                self.core = ServiceCore(self.config)
            except BaseException:
                if listener is not None:
                    listener.close()
                raise
            try:
                await self._startup(listener)
                self.started.set()
                log.info("shmbridge ready (engine %s)", self.config.engine)
                await self._stop.wait()
            finally:
                await self._shutdown()

    def request_stop(self, force: bool = False) -> None:
        self._force = self._force or force
        self._stop.set()

    async def _startup(self, listener: socket.socket | None) -> None:
        assert self.core is not None
        soft_limit = raise_nofile_limit()
        try:
            await self.core.start()  # the engine's own files are open now, before the budget is sized
            connections = self.config.max_sessions + self.config.max_pending_connections
            self.fds = Descriptors.for_process(soft_limit, open_fd_count(), connections)
            log.info("open-file limit %d: %d descriptors for session sockets, %d for segments and regions, %d "
                     "for HTTP connections", soft_limit, self.fds.connections.limit, self.fds.memory.limit,
                     self.fds.http.limit)  # fmt: skip
            if self.config.shm_enabled:
                self.sessions = SessionServer(self.core, self.budget, self.fds)
                await self.sessions.start()
        except BaseException:
            if listener is not None:
                listener.close()
            raise
        if listener is not None:
            await self._start_http(listener)

    async def _start_http(self, listener: socket.socket) -> None:
        import uvicorn

        from .http.app import create_app

        self.regions = RegionRegistry.for_service(self.config, self.fds)
        app = create_app(self.core, self.sessions, self.budget, self.fds, regions=self.regions)
        warn_if_exposed(self.config.http_host, self.config.api_token is not None)
        uv_config = uvicorn.Config(
            app,
            host=self.config.http_host,
            port=self.config.http_port,
            log_level="warning",
            lifespan="off",
            # uvicorn wants whole seconds; int() would turn a short drain (0.5 s) into "cancel at once".
            timeout_graceful_shutdown=max(1, math.ceil(self.config.drain_timeout)),
            # Longer than clients keep idle connections (httpx: 5 s), so the client closes first and never
            # sends a request into a connection the server is closing at that moment.
            timeout_keep_alive=30,
            # Counted in the fd budget, and closed when silent for request_timeout (uvicorn keeps a connection
            # that never sends a byte open for ever).
            http=budgeted_protocol(self.fds.http, self.config.request_timeout) if self.fds is not None else "auto",
        )
        self._http = _EmbeddedUvicorn(uv_config)
        self._http_task = asyncio.get_running_loop().create_task(self._http.serve([listener]), name="http")
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()  # raises the bind error
                raise RuntimeError("the HTTP server stopped during startup")
            await asyncio.sleep(0.01)
        log.info("HTTP listening on %s:%s", self.config.http_host, self.bound_http_port)

    @property
    def bound_http_port(self) -> int | None:
        if self._http is None or not self._http.servers:
            return None
        return self._http.servers[0].sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        timeout = 0.0 if self._force else self.config.drain_timeout
        log.info("shutting down (drain up to %.1fs)", timeout)
        if self.core is not None:
            self.core.withdraw_readiness()
        waits = []
        if self._http is not None:
            self._http.should_exit = True
            if self._force:
                self._http.force_exit = True
        if self.sessions is not None:
            waits.append(self.sessions.close(timeout))
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        if self._http_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._http_task, timeout + 2.0)
        if self.core is not None:
            self.core.stop_accepting()
            await self.core.drain(timeout)
            if not await self._close_engines():
                self.engine_hung = True
                log.error("an engine thread is still running %.1fs after shutdown began its close; leaving "
                          "without waiting for it", self.config.engine_timeout)  # fmt: skip
                return
        if self.regions is not None:  # after the engines stopped: no thread reads a region any more
            self.regions.close()
        log.info("shmbridge stopped")

    async def _close_engines(self) -> bool:
        """Close the engine pool within ``engine_timeout``; False if an engine thread is still stuck.

        A thread that timed out inside an engine cannot be stopped, and closing the pool waits for it. The
        wait runs in a daemon thread, so a stuck engine delays shutdown by ``engine_timeout`` at most; the
        CLI then leaves with ``os._exit``, since the interpreter would join that thread at exit."""
        core = self.core
        assert core is not None
        closed = threading.Event()

        def close() -> None:
            try:
                core.close()
            finally:
                closed.set()

        threading.Thread(target=close, name="engine-close", daemon=True).start()
        return await wait_until(closed.is_set, self.config.engine_timeout, step=0.02)

    @contextlib.contextmanager
    def _signals(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """First signal drains, a second forces; the original handlers come back afterwards."""
        originals = {sig: signal.getsignal(sig) for sig in _SIGNALS}

        def on_signal(sig: int) -> None:
            if self._stop.is_set():
                log.warning("second signal %s: forcing shutdown", signal.Signals(sig).name)
                self.request_stop(force=True)
                if self._http is not None:
                    self._http.force_exit = True
            else:
                log.info("signal %s: draining", signal.Signals(sig).name)
                self.request_stop()

        for sig in _SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            yield
        finally:
            for sig, handler in originals.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)


def warn_if_exposed(host: str, has_token: bool) -> bool:
    """Log a warning when HTTP listens beyond loopback without a bearer token; True if it did."""
    if has_token or _is_loopback(host):
        return False
    log.warning("HTTP listens on %s, beyond loopback, without a bearer token: anyone who can reach the port "
                "can run OCR and register regions; set SHMBRIDGE_API_TOKEN (docs/deployment.md, Security model)",
                host)  # fmt: skip
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


try:
    import uvicorn as _uvicorn

    class _EmbeddedUvicorn(_uvicorn.Server):
        """uvicorn without its own signal handling: ``Server`` owns the signals and the order of shutdown."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

except ImportError:  # pragma: no cover - uvicorn is a core dependency
    pass
