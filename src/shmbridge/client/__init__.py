"""The Python client: ``Client`` (blocking) and ``AsyncClient`` (asyncio), plus the low-level session clients.

Users import from ``shmbridge``; the modules here are:

- ``base``: configuration, lifecycle, options, results and the fallback policy (no I/O);
- ``inputs``: what ``ocr`` accepts and the one copy each kind costs;
- ``http`` and ``shm``: the two transports behind one ``handle(call)`` method;
- ``sync_client`` and ``async_client``: the two thin shells;
- ``session`` and ``slots``: the low-level session protocol clients;
- ``diagnose``: the step-by-step check behind ``diagnose()`` and ``shmbridge status``.
"""

from .async_client import AsyncClient
from .base import ClientResult, CommunicationMode, Lifecycle, Mode, RetryPolicy, Timeouts
from .diagnose import Diagnosis
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
]
