"""The Python client: ``Client`` (blocking) and ``AsyncClient`` (asyncio), plus the low-level session clients.

Users import from ``shmbridge``; the modules here are:

- ``base`` and ``policy``: configuration, lifecycle, options, results, retries, timeouts and the fallback
  policy (no I/O);
- ``inputs``: what ``ocr`` accepts and the one copy each kind costs;
- ``shell_async``: every call of both clients, written once; ``shell`` is generated from it for ``Client``
  (``scripts/unasync.py``), and so is ``shm`` (the session transport) from ``shm_async``;
- ``sync_client`` and ``async_client``: ``Client`` and ``AsyncClient``, what differs between them (how each
  waits for a session, and ``ocr_batch``);
- ``http`` and ``shm``/``shm_async``: the two transports behind one ``handle(call)`` method;
- ``session``, ``session_async``, ``session_base`` and ``slots``: the low-level session protocol clients
  (one shared core, each half keeping only its waiting);
- ``streams``: the rules of a ``client.stream(name)`` handle;
- ``diagnose``: the step-by-step check behind ``diagnose()`` and ``shmbridge status``.

This package must never be imported by the service.
"""

from .async_client import AsyncClient
from .base import ClientResult, CommunicationMode, Lifecycle, Mode, TransportPolicy
from .diagnose import Diagnosis
from .policy import RetryPolicy, Timeouts
from .sync_client import Client

__all__ = [
    "AsyncClient",
    "Client",
    "ClientResult",
    "CommunicationMode",
    "Diagnosis",
    "Lifecycle",
    "Mode",
    "RetryPolicy",
    "Timeouts",
    "TransportPolicy",
]
