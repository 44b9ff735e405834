"""A session's frames out, through its ``wire.Connection``: RESULT, ERROR and every other event.

Owns turning what a session answers into bytes, with the connection's state moving as each goes out, and
the one frame written before any connection exists (a refusal at accept). Once the service has said its
last word to a client (BYE, or an ERROR about the connection) a late answer has no frame: these return
``None`` and the session writes nothing. Pure functions: they must never touch a socket.
"""

from __future__ import annotations

from ... import wire
from ...errors import SessionClosed, ShmBridgeError
from ...models import OcrResult


def event_frame(conn: wire.Connection, event: wire.Event) -> bytes | None:
    """The frame of ``event`` (the connection's state moves with it), or ``None`` after the last word."""
    try:
        return conn.send(event)
    except SessionClosed:
        return None


def result_frame(conn: wire.Connection, request_id: int, result: OcrResult) -> bytes | None:
    """A RESULT frame, the result serialised once by pydantic's own JSON serialiser; ``None`` after the
    last word."""
    try:
        return conn.send_result_json(request_id, result.model_dump_json().encode())
    except SessionClosed:
        return None


def error_frame(conn: wire.Connection, request_id: int, exc: ShmBridgeError) -> bytes | None:
    """An ERROR frame for ``exc`` (request id 0: about the connection, which it ends)."""
    return event_frame(conn, wire.Error.of(request_id, exc))


def refusal_frame(exc: ShmBridgeError) -> bytes:
    """The ERROR a connection refused at accept gets: no session, so no connection state, exists yet."""
    return wire.encode(wire.Error.of(0, exc))
