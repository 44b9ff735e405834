"""How often and how patiently a client tries: ``RetryPolicy``, ``BackoffClock`` and ``Timeouts``.

``RetryPolicy`` says how many HTTP tries a call gets and how long to wait between them (exponential,
jittered, ``Retry-After`` honoured); ``BackoffClock`` applies the same backoff to reopening a lost session;
``Timeouts`` bounds one call, the session's waits and connecting. Plain values and arithmetic: this module
must never sleep, open anything or decide what a failure means (``base.session_failure`` does).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry.

    ``attempts`` counts HTTP tries per call (the first included), made only for what the service says is
    temporarily unavailable (connection refused or lost, 503 with or without ``Retry-After``), and only for
    idempotent requests. The wait before retry *n* is ``backoff * 2**(n-1)``, capped at ``max_backoff``,
    stretched or shrunk by up to ``jitter`` (a fraction) so clients do not retry in lockstep; a
    ``Retry-After`` from the service is honoured when longer. A lost session is reconnected with the same
    backoff, without an attempt limit.
    """

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts counts the first try too: at least 1")
        if self.backoff < 0 or self.max_backoff < self.backoff:
            raise ValueError("need 0 <= backoff <= max_backoff")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 = the first)."""
        base = min(self.max_backoff, self.backoff * 2 ** max(0, failures - 1))
        wait = base * (1 + random.uniform(-self.jitter, self.jitter))
        return max(wait, retry_after or 0.0)


class BackoffClock:
    """When the next attempt to (re)open the session is due. Thread-safe (a lock, never a wait)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self._next_at = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        return time.monotonic() >= self._next_at

    def remaining(self) -> float:
        return max(0.0, self._next_at - time.monotonic())

    def failed(self) -> float:
        """Record a failure; returns the seconds until the next attempt."""
        with self._lock:
            self.failures += 1
            wait = self.policy.delay(self.failures)
            self._next_at = time.monotonic() + wait
            return wait

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self._next_at = 0.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``request`` bounds one call over HTTP (retries included); ``session`` bounds waiting for a
    slot and for the reply on the session (default: ``request``), after which the session counts as broken
    and the call goes over HTTP with a fresh ``request`` budget; ``connect`` bounds opening a connection,
    the session handshake and service discovery."""

    request: float = 30.0
    connect: float = 2.0
    session: float | None = None

    @property
    def session_timeout(self) -> float:
        return self.request if self.session is None else self.session
