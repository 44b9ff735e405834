"""The shared-memory door: a Unix-socket server speaking ``protocol``, one thread per session.

- ``listener``: ``SessionServer``, the socket, the accept loop and what every session shares (budgets,
  pending connections, writer and allocator pools, the low-latency hold, the scrape-time gauges);
- ``session``: ``Session``, one connection's thread: HELLO, the read loop and the handlers, the end;
- ``writer``: ``SessionWriter``, frames written whole from any thread, the writer job's outbox and its
  backpressure;
- ``ending``: the in-flight requests drained and the memory unmapped at a session's end;
- ``frames``: request options from OCR_REQUEST, RESULT and ERROR frames;
- ``place``: a session's place under ``max_sessions``; ``pending``: connections waiting for WELCOME.

The package must never copy pixels, and never reach the HTTP door.
"""

from .listener import SessionServer
from .session import Session

__all__ = ["Session", "SessionServer"]
