"""HTTP connections under the fd budget: uvicorn's protocol with a count and a first-request deadline.

uvicorn accepts every connection and keeps one that never sends a request open for ever, so a peer could
take every descriptor of the process with idle TCP connections. ``budgeted_protocol`` returns uvicorn's
own protocol class with two additions: each connection takes one descriptor of ``Descriptors.http``
(beyond it the connection gets a bare 503 and is closed), and a connection that has not sent a byte
within ``first_byte_timeout`` is closed. Everything else is uvicorn's.

It must never parse HTTP itself.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...errors import DescriptorLimitExceeded
from ..fd_budget import FdBudget

log = logging.getLogger("shmbridge.http")

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n"
    b"Connection: close\r\n\r\ntoo many HTTP connections; retry later\r\n"
)


def budgeted_protocol(budget: FdBudget, first_byte_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class, counting its connections in ``budget``."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class BudgetedHttpProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _counted = False
        _spoke = False
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            try:
                budget.take("HTTP connection")
            except DescriptorLimitExceeded:
                transport.write(_REFUSED)
                transport.close()
                return
            self._counted = True
            self._deadline = asyncio.get_running_loop().call_later(first_byte_timeout, self._silent, transport)

        def _silent(self, transport: Any) -> None:
            if not self._spoke:
                transport.close()

        def data_received(self, data: bytes) -> None:
            self._spoke = True
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            if self._counted:
                self._counted = False
                budget.give()
            super().connection_lost(exc)

    return BudgetedHttpProtocol
