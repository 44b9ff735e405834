"""What ``Client`` and ``AsyncClient`` share, with no I/O: configuration, lifecycle, options, results, policy.

The two clients (``sync_client.Client``, ``async_client.AsyncClient``) make their calls in one shell written
once (``shell_async``, generated into ``shell``) and differ only in how they wait. Everything they decide
lives here once:

- the configuration (``BaseClient.__init__``: URL, socket, transport policy, timeouts, retries, from arguments or the
  environment);
- the lifecycle (``Lifecycle``: unopened → opened → closed) and the ``UsageError`` for a closed client;
- when to try the session again (``BackoffClock`` over ``RetryPolicy``, both in ``policy``);
- which session failures HTTP may serve (``session_failure``) and what a result is labelled with
  (``communication_mode``):

  ``shared_memory``  the call went over the session, pixels by reference;
  ``http_fallback``  shared memory was expected for this call but could not serve it: the session broke
                     (EOF, timeout, protocol error), a limit refused the frame or the handshake, or a socket
                     the caller configured explicitly (argument or ``SHMBRIDGE_SOCKET_PATH``) cannot be reached;
  ``http``           ``mode="http"``, or shared memory was never there: no socket configured and none
                     discovered, or the discovered socket never answered (e.g. not mounted into a container).

  Whenever a call that could have used shared memory goes over HTTP, its result's ``warnings`` say why
  (``fallback_warning``), and the client logs each distinct reason once at WARNING.

This module must never open a socket, start a thread or sleep.
"""

from __future__ import annotations

import copy
import enum
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..capture.screen import Screens
from ..environment import SOCKET_VARIABLE, socket_from_environment, url_from_environment
from ..errors import (
    Busy,
    LimitExceeded,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
    ShmBridgeError,
    StreamLimitExceeded,
    TransportError,
    UsageError,
)
from ..models import OcrOptions, OcrResult
from ..wire import Welcome
from ..wire import options_from_fields as build_options  # noqa: F401  (the clients' name for it)
from .inputs import FrameRegistry, Prepared
from .policy import BackoffClock, RetryPolicy, Timeouts

DEFAULT_URL = "http://127.0.0.1:8080"
SOCKET_ENV = SOCKET_VARIABLE  # the service's name; the old SHMBRIDGE_SOCKET still works, with a warning
log = logging.getLogger("shmbridge.client")
CommunicationMode = Literal["shared_memory", "http", "http_fallback"]


class Lifecycle(enum.Enum):
    """Where a client is in its life. Calls open an unopened client; nothing reopens a closed one."""

    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


class TransportPolicy(enum.StrEnum):
    """Which transports a client may use (its ``mode=`` argument). Not a ``CommunicationMode``: that says
    which one carried a call."""

    AUTO = "auto"  # shared memory when the session works, else HTTP
    SHM = "shm"  # shared memory only: failures raise, never fall back
    HTTP = "http"  # HTTP only: never opens a session


#: The public name ``TransportPolicy`` had first (``shmbridge.Mode``): "mode" now means only how a call travelled.
Mode = TransportPolicy


class ClientResult(OcrResult):
    """An ``OcrResult`` plus how it travelled and how long the caller waited.

    ``processing_time_ms`` (inherited) is the service's own time; ``total_time_ms`` is measured by the
    client around the whole call, fallback and retries included.
    """

    communication_mode: CommunicationMode
    total_time_ms: float = 0.0


@dataclass(slots=True, eq=False)
class OcrCall:
    """One OCR call as both transports take it (not frozen: one is built per call, and a frozen dataclass
    sets each field through ``object.__setattr__``)."""

    image: Prepared
    options: OcrOptions
    request_id: str | None
    timeout: float
    fallback: bool = False


class SessionFailure(Exception):
    """Internal: a session call failed in a way HTTP can serve. Never escapes a client.

    ``broken`` says the session itself is lost (close it and reconnect); otherwise only this frame was
    refused (a limit) and the session stays.
    """

    def __init__(self, error: ShmBridgeError, *, broken: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.broken = broken


def session_failure(exc: ShmBridgeError, *, waiting_for_slot: bool = False) -> SessionFailure | None:
    """What HTTP may serve instead of the session, or ``None`` when the error is the caller's answer.

    - The session is lost (EOF, reply timeout, protocol error, unreachable): fall back and reconnect.
    - A limit refused this frame or this session (bytes, sessions, frame size): fall back, keep the session;
      a stream limit is the caller's (its streams live where it opened them), so it is raised.
    - Every slot stayed lent (``waiting_for_slot``), the service is busy (HTTP shares its admission), the
      request is invalid or the engine failed: HTTP would answer the same, so the error is raised.
    """
    if waiting_for_slot and isinstance(exc, RequestTimeout):
        return None
    if isinstance(exc, TransportError | ProtocolError):
        return SessionFailure(exc, broken=True)
    if isinstance(exc, LimitExceeded) and not isinstance(exc, Busy | StreamLimitExceeded):
        return SessionFailure(exc, broken=False)
    return None


# -- options and results -----------------------------------------------------------------------------------


def session_result(fields: Mapping[str, Any]) -> ClientResult:
    """A session's RESULT fields validated once, straight into the client's result (the session's ``parse``):
    no ``OcrResult`` to validate again, and pydantic-core called as ``model_validate`` calls it, without
    its Python frame. ``timed`` fills ``total_time_ms`` in."""
    return ClientResult.__pydantic_validator__.validate_python({**fields, **_SESSION_FIELDS})


_SESSION_FIELDS = {"communication_mode": "shared_memory", "total_time_ms": 0.0}


def timed(result: ClientResult, started: float) -> ClientResult:
    """``result`` with the caller's wait since ``started`` (``perf_counter``) as ``total_time_ms``, a field
    its validation set already (so it counts as set): a float stored as pydantic stores it, in the
    instance's ``__dict__``, without ``BaseModel.__setattr__``'s two Python frames."""
    result.__dict__["total_time_ms"] = (time.perf_counter() - started) * 1e3
    return result


def shape_result(
    result: OcrResult, mode: CommunicationMode, started: float, warning: str | None = None
) -> ClientResult:
    """The shared result plus the client's view of the call (and why shared memory was not used, if so): an
    HTTP answer's. A session's is made in its one validation (``session_result``)."""
    fields = {**result.__dict__, "communication_mode": mode}
    if warning is not None:
        fields["warnings"] = [*result.warnings, warning]
    fields["total_time_ms"] = (time.perf_counter() - started) * 1e3
    # A dict validated by pydantic-core, not model_construct: the lines, timings and stream block are
    # model instances already, which validation takes as they are (no line is validated again), and the
    # validation runs in Rust where model_construct loops over the fields in Python (several times
    # slower on the hot path; docs/benchmarks.md, "Figures behind the code's choices").
    return ClientResult.model_validate(fields)


def info_from_welcome(welcome: Welcome, socket_path: Path | None) -> dict[str, Any]:
    """What a session's WELCOME tells about the service, shaped like ``/api/v1/bridge/info`` (no HTTP needed)."""
    return {
        "service": "shmbridge",
        "protocol_version": welcome.version,
        "modes": {"shm_session": True},
        "socket_path": str(socket_path) if socket_path else None,
        "session_id": welcome.session_id,
        "limits": dict(welcome.limits),
        "engine": dict(welcome.engine),
        "source": "session",
    }


def socket_from_info(info: dict[str, Any]) -> str | None:
    """The session socket a ``/api/v1/bridge/info`` answer advertises, if session mode is on."""
    modes = info.get("modes") or {}
    enabled = modes.get("shm_session", False) if isinstance(modes, dict) else "shm_session" in modes
    path = info.get("socket_path")
    return str(path) if enabled and path else None


# -- the base of both shells ------------------------------------------------------------------------------


class BaseClient:
    """Configuration and decisions shared by ``Client`` and ``AsyncClient``; no I/O."""

    def __init__(
        self,
        url: str | None = None,
        *,
        socket: str | os.PathLike[str] | None = None,
        mode: TransportPolicy | str = TransportPolicy.AUTO,
        timeout: float | Timeouts = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        """``url`` defaults to ``$SHMBRIDGE_URL``, else ``http://127.0.0.1:8080``; ``socket`` to
        ``$SHMBRIDGE_SOCKET_PATH``, else the socket the service advertises."""
        #: ``url``, else ``$SHMBRIDGE_URL``, else ``DEFAULT_URL``.
        self.url = (url_from_environment(DEFAULT_URL) if url is None else url).rstrip("/")
        #: Which transports this client may use (``mode=``; ``mode`` reads and sets it too).
        self.transport_policy = TransportPolicy(mode)
        self.timeouts = timeout if isinstance(timeout, Timeouts) else Timeouts(request=float(timeout))
        self._session_budget = self.timeouts.session_timeout  # what `_ocr` reads per call, not the property
        self.retry = retry or RetryPolicy()
        configured, source = (os.fspath(socket), "argument") if socket is not None else socket_from_environment()
        #: The socket the caller named (argument or environment); ``None`` means "discover it".
        self.configured_socket: Path | None = Path(configured) if configured else None
        #: Where ``socket_path`` came from: ``argument``, a variable's name, ``service`` once discovered.
        self.socket_source: str | None = source if configured else None
        self.socket_path: Path | None = self.configured_socket
        self.state = Lifecycle.UNOPENED
        self._clock = BackoffClock(self.retry)
        # Shared memory was expected: a socket was configured, or a session opened or was refused by a limit.
        self._shm_expected = self.configured_socket is not None and self.transport_policy is not TransportPolicy.HTTP
        self._last_session_error: ShmBridgeError | None = None
        #: Discovery got an answer and it names no session socket: stop looking.
        self._discovered_none = False
        self._warned: set[str] = set()  # fallback reasons already logged
        self._screens = Screens()
        self._frames = FrameRegistry()  # the slots lent through frame(), to send their arrays by reference
        self._lock = threading.Lock()  # the lifecycle and the session reference; never held across a wait
        self._make_transports()

    def _make_transports(self) -> None:
        """Each kind of client: its HTTP transport, no session yet, and its connect lock (nothing opens)."""
        raise NotImplementedError

    @property
    def mode(self) -> TransportPolicy:
        """The ``mode=`` this client was made with: its ``transport_policy``."""
        return self.transport_policy

    @mode.setter
    def mode(self, value: TransportPolicy | str) -> None:
        self.transport_policy = TransportPolicy(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} mode={self.transport_policy.value} {self.state.value}>"

    # -- lifecycle -----------------------------------------------------------------------------------------

    def _check_open(self) -> bool:
        """``UsageError`` on a closed client; True when it still has to be opened."""
        if self.state is Lifecycle.CLOSED:
            raise UsageError(f"this {type(self).__name__} is closed; create a new one")
        return self.state is Lifecycle.UNOPENED

    # -- decisions -------------------------------------------------------------------------------------------

    def _http_label(self) -> CommunicationMode:
        return "http_fallback" if self._shm_expected else "http"

    def _note_session_opened(self) -> None:
        self._shm_expected = True
        self._last_session_error = None
        self._clock.succeeded()

    def _note_session_refused(self, exc: ShmBridgeError) -> float:
        """A connect or handshake failed; returns the seconds until the next attempt."""
        if isinstance(exc, LimitExceeded):
            self._shm_expected = True  # reachable, but refused: this is a fallback, not a missing socket
        self._last_session_error = exc
        return self._clock.failed()

    def _note_session_lost(self, exc: ShmBridgeError) -> None:
        self._last_session_error = exc
        self._clock.failed()

    def _discovery_done(self, found: str | None) -> None:
        if found is None:
            self._discovered_none = True
        else:
            self.socket_path = Path(found)
            self.socket_source = "service"

    def _fallback_warning(self, failed: SessionFailure | None) -> str | None:
        """Why a call that could have used shared memory goes over HTTP, logged once per reason."""
        if self.transport_policy is TransportPolicy.HTTP:
            return None
        error = failed.error if failed is not None else self._last_session_error
        if error is None:
            return None
        warning = fallback_warning(error)
        if warning not in self._warned:
            self._warned.add(warning)
            log.warning("%s (client of %s; later calls try shared memory again)", warning, self.url)
        return warning

    def _no_session_error(self) -> ShmBridgeError:
        """What ``mode="shm"`` raises when no session can be had."""
        if self._last_session_error is not None:
            return copy.copy(self._last_session_error)  # a fresh instance: no traceback piles up on re-raise
        if self.socket_path is None:
            return ServiceUnavailable(
                f"no session socket: pass socket=, set {SOCKET_ENV}, or run a service with sessions on at {self.url}"
            )
        return ServiceUnavailable(f"no session on {self.socket_path}")


def fallback_warning(error: ShmBridgeError) -> str:
    """The result warning for a call that went over HTTP because of ``error``."""
    return f"shared memory not used, sent over HTTP: {error.message}"


def with_warnings(result: ClientResult, warnings: tuple[str, ...]) -> ClientResult:
    result.warnings.extend(warning for warning in warnings if warning not in result.warnings)
    return result


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the delta form; an HTTP date is treated as 1 s)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return 1.0
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
