"""One side of a session, sans I/O, for either role: the state table, and a ``Connection`` it drives.

Owns the conversation of protocol version 1: which role may send which event in which state, and the
state each event leads to, in ONE table that the client and the service both read (``TABLE``). A
``Connection`` learns the state from the events it sends (``send``) and those it receives
(``next_event``), as h11 does, so no I/O layer moves it by hand. It must never touch a socket, a thread or
a clock, and never decide what a request means (the session code answers it).

The conversation, seen from both ends::

    AWAIT_HELLO ──HELLO──► AWAIT_WELCOME ──WELCOME──► READY
         │                      │                       │  ALLOC, OCR_REQUEST ─► SEGMENT, RESULT, ERROR
         └───── BYE, or ERROR with request id 0 (the connection's) ──────────────┐
                                                                                  ▼
                       CLIENT_DONE (the client said BYE) / SERVICE_DONE (the service did) ──BYE──► CLOSED

The client may pipeline ALLOC and OCR_REQUEST after its HELLO (AWAIT_WELCOME); the service answers
frames in order. After the client's BYE the service still answers what is in flight, then says BYE.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from ..errors import ErrorCode, ProtocolError, SessionClosed
from .codec import FrameDecoder, RawFrame, decode_as, encode, encode_ocr_request, encode_result_json
from .events import EVENT_OF, Alloc, Bye, Error, Event, Hello, OcrRequest, Result, SegmentGranted, Welcome
from .frames import DEFAULT_MAX_BODY, SUPPORTED_VERSIONS

__all__ = ["TABLE", "ClosingError", "Connection", "Role", "State", "negotiate"]


class Role(enum.Enum):
    CLIENT = "client"
    SERVICE = "service"


class State(enum.Enum):
    AWAIT_HELLO = "await_hello"  # connected: the client's HELLO is due
    AWAIT_WELCOME = "await_welcome"  # HELLO sent: the service's WELCOME (or its refusal) is due
    READY = "ready"  # requests and their replies flow, any number in flight, in any order
    CLIENT_DONE = "client_done"  # the client said BYE (or left): the service finishes what is in flight
    SERVICE_DONE = "service_done"  # the service said BYE or ERROR 0: the client may only say BYE
    CLOSED = "closed"  # both have said their last word


class ClosingError:
    """A key of ``TABLE``, never an event: an ERROR with request id 0, about the connection, after which
    the service closes it (a plain ``Error`` answers one request)."""


#: The one state table. For each state, each role's events it may send there, and the state each leads to
#: (the same state: it stays). An event missing from its role's row is UNEXPECTED_FRAME.
TABLE: dict[State, dict[Role, dict[type, State]]] = {
    State.AWAIT_HELLO: {
        Role.CLIENT: {Hello: State.AWAIT_WELCOME, Bye: State.CLIENT_DONE},
        Role.SERVICE: {Error: State.SERVICE_DONE, ClosingError: State.SERVICE_DONE, Bye: State.SERVICE_DONE},
    },
    State.AWAIT_WELCOME: {
        Role.CLIENT: {Alloc: State.AWAIT_WELCOME, OcrRequest: State.AWAIT_WELCOME, Bye: State.CLIENT_DONE},
        Role.SERVICE: {Welcome: State.READY, Error: State.SERVICE_DONE, ClosingError: State.SERVICE_DONE,
                       Bye: State.SERVICE_DONE},
    },
    State.READY: {
        Role.CLIENT: {Alloc: State.READY, OcrRequest: State.READY, Bye: State.CLIENT_DONE},
        Role.SERVICE: {SegmentGranted: State.READY, Result: State.READY, Error: State.READY,
                       ClosingError: State.SERVICE_DONE, Bye: State.SERVICE_DONE},
    },
    State.CLIENT_DONE: {
        Role.CLIENT: {},
        Role.SERVICE: {Result: State.CLIENT_DONE, Error: State.CLIENT_DONE, ClosingError: State.CLOSED,
                       Bye: State.CLOSED},
    },
    State.SERVICE_DONE: {Role.CLIENT: {Bye: State.CLOSED}, Role.SERVICE: {}},
    State.CLOSED: {Role.CLIENT: {}, Role.SERVICE: {}},
}  # fmt: skip

_PEER = {Role.CLIENT: Role.SERVICE, Role.SERVICE: Role.CLIENT}


class _Row(NamedTuple):
    """One state as one side sees it, swapped in whole (a single attribute write moves a connection)."""

    state: State
    ours: dict[type, State]
    theirs: dict[type, State]
    plain_requests: bool  # the peer may send OCR_REQUEST here: try the one-``unpack`` path first


class Connection:
    """One end of a session, for ``role``: encodes what it sends, decodes what it receives, and keeps the
    conversation's state from both.

    ``send`` raises ``SessionClosed`` once this side may send nothing but BYE (or not even that), and
    ``ProtocolError(UNEXPECTED_FRAME)`` for an event its role may not send in this state. ``next_event``
    raises ``ProtocolError`` for every frame that breaks the format or the table, with ``request_id`` set
    when the frame was read whole in READY (the session may survive it).

    Threads: each state change is one attribute write, so a side that sends from several threads (the
    service's writer jobs) sees the state before or after a change, never half of one.
    """

    def __init__(self, role: Role, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.role = role
        self.decoder = FrameDecoder(max_body)
        self._rows = {state: _row(state, role) for state in State}
        self._row = self._rows[State.AWAIT_HELLO]

    @property
    def state(self) -> State:
        return self._row.state

    def may_send(self, kind: type) -> bool:
        """True when this side may send an event of class ``kind`` now."""
        return kind in self._row.ours

    # -- sending -------------------------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The frame for ``event``; this side's sending it moves the state."""
        kind = _kind(event)
        target = self._row.ours.get(kind)
        if target is None:
            raise self._refused(type(event).__name__)
        data = encode(event)
        self._move(target)
        return data

    def send_request(self, request: OcrRequest) -> bytes:
        """The client's hot path: an OCR_REQUEST's frame (it never moves the state)."""
        if OcrRequest not in self._row.ours:
            raise self._refused("OcrRequest")
        return encode_ocr_request(request)

    def send_result_json(self, request_id: int, body: bytes) -> bytes:
        """The service's hot path: a RESULT around JSON already serialised (it never moves the state)."""
        if Result not in self._row.ours:
            raise self._refused("Result")
        return encode_result_json(request_id, body)

    def _refused(self, name: str) -> Exception:
        row = self._row
        state = row.state
        if not row.ours or not row.theirs:
            return SessionClosed(f"the session is closed ({state.value}): {name} cannot be sent")
        return ProtocolError(f"{self.role.value} may not send {name} in state {state.value}",
                             code=ErrorCode.UNEXPECTED_FRAME)  # fmt: skip

    # -- receiving ------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append received bytes; ``b""`` means the peer closed its side."""
        self.decoder.receive_data(data)

    def next_event(self) -> Event | None:
        """The peer's next event, ``None`` if more bytes are needed; ``ProtocolError`` on any violation."""
        row = self._row
        if row.plain_requests and (event := self.decoder.next_plain_ocr_request()) is not None:
            return event
        frame = self.decoder.next_frame()
        if frame is None:
            if self.decoder.at_eof:
                self._peer_left()
            return None
        kind = EVENT_OF.get(frame.frame_type)
        if kind is None:  # an unknown type stays a per-request error
            raise self._request_error(ProtocolError(f"unknown frame type {frame.frame_type}",
                                                    code=ErrorCode.UNKNOWN_FRAME_TYPE), frame)  # fmt: skip
        # The type decides before the body is read, so a malformed WELCOME from a client ends the session
        # exactly like a valid one.
        target = row.theirs.get(kind)
        if target is None:
            raise self._unexpected(kind.__name__)
        try:
            event = decode_as(frame, kind)
        except ProtocolError as exc:
            raise self._request_error(exc, frame) from None
        if kind is Error and frame.request_id == 0:
            target = row.theirs.get(ClosingError, target)
        if target is not row.state:
            self._move(target)
        return event

    def _request_error(self, exc: ProtocolError, frame: RawFrame) -> ProtocolError:
        if self._row.state is State.READY:
            exc.request_id = frame.request_id  # the frame was read whole: the session survives
        return exc

    def _unexpected(self, name: str) -> ProtocolError:
        state = self._row.state
        return ProtocolError(
            f"{name} is not allowed in state {state.value}"
            + (" (send HELLO first)" if state is State.AWAIT_HELLO else ""),
            code=ErrorCode.UNEXPECTED_FRAME,
        )

    def _peer_left(self) -> None:
        """EOF after whole frames: the peer said its last word without BYE, which moves the state like one."""
        target = self._row.theirs.get(Bye)
        if target is not None:
            self._move(target)

    def _move(self, state: State) -> None:
        self._row = self._rows[state]


def _kind(event: Event) -> type:
    """The table key of ``event``: its class, or ``ClosingError`` for an ERROR about the connection."""
    kind = type(event)
    if kind is Error and event.request_id == 0:
        return ClosingError
    return kind


def _row(state: State, role: Role) -> _Row:
    theirs = TABLE[state][_PEER[role]]
    return _Row(state, TABLE[state][role], theirs, OcrRequest in theirs)


def negotiate(client_versions: tuple[int, ...]) -> int:
    """The highest version both sides speak; ``ProtocolError(BAD_VERSION)`` if none."""
    common = set(client_versions) & set(SUPPORTED_VERSIONS)
    if not common:
        raise ProtocolError(f"no common protocol version: client speaks {list(client_versions)}, "
                            f"service speaks {list(SUPPORTED_VERSIONS)}", code=ErrorCode.BAD_VERSION)  # fmt: skip
    return max(common)
