"""The one state table, from both ends: a client's and a service's ``wire.Connection`` driven by the same
conversation agree on its state at every step, and every event outside the table is refused, sent or received."""

from __future__ import annotations

import pytest

from shmbridge import wire
from shmbridge.errors import ErrorCode, ProtocolError, SessionClosed
from shmbridge.wire import Role, State

CLIENT, SERVICE = Role.CLIENT, Role.SERVICE
REQUEST = wire.OcrRequest(3, 1, 0, 0, 10, 10, 3, "rgb", 30)
#: One event of each kind, and who may ever send it.
EVENTS: dict[type, tuple[Role, wire.Event]] = {
    wire.Hello: (CLIENT, wire.Hello(1)),
    wire.Alloc: (CLIENT, wire.Alloc(2, 1000, 2)),
    wire.OcrRequest: (CLIENT, REQUEST),
    wire.Welcome: (SERVICE, wire.Welcome(1, 1, "s")),
    wire.SegmentGranted: (SERVICE, wire.SegmentGranted(2, 1, 65536, 2)),
    wire.Result: (SERVICE, wire.Result(3, {})),
    wire.Error: (SERVICE, wire.Error(3, int(ErrorCode.BAD_SLOT), "no such slot")),
    wire.ClosingError: (SERVICE, wire.Error(0, int(ErrorCode.BUSY), "busy")),
}
#: How a conversation reaches each state: (sender, event) in order.
_WELCOMED = [(CLIENT, wire.Hello(1)), (SERVICE, wire.Welcome(1, 1, "s"))]
PATHS: dict[State, list[tuple[Role, wire.Event]]] = {
    State.AWAIT_HELLO: [],
    State.AWAIT_WELCOME: _WELCOMED[:1],
    State.READY: _WELCOMED,
    State.CLIENT_DONE: [*_WELCOMED, (CLIENT, wire.Bye(0, "done"))],
    State.SERVICE_DONE: [*_WELCOMED, (SERVICE, wire.Bye(0, "stop"))],
    State.CLOSED: [*_WELCOMED, (CLIENT, wire.Bye()), (SERVICE, wire.Bye())],
}


def _pair() -> tuple[wire.Connection, wire.Connection]:
    return wire.Connection(CLIENT), wire.Connection(SERVICE)


def _deliver(sender: wire.Connection, receiver: wire.Connection, event: wire.Event) -> wire.Event:
    """``sender`` sends ``event``; ``receiver`` reads it."""
    receiver.receive_data(sender.send(event))
    received = receiver.next_event()
    assert received == event and receiver.next_event() is None
    return received


def _at(state: State) -> tuple[wire.Connection, wire.Connection]:
    """Both ends of a conversation that reached ``state``."""
    client, service = _pair()
    for role, event in PATHS[state]:
        sender, receiver = (client, service) if role is CLIENT else (service, client)
        _deliver(sender, receiver, event)
        assert client.state is service.state
    assert client.state is service.state is state
    return client, service


def test_a_whole_conversation_moves_both_ends_alike() -> None:
    client, service = _pair()
    _deliver(client, service, wire.Hello(1))
    _deliver(client, service, wire.Alloc(2, 1000, 2))  # pipelined before the WELCOME
    assert client.state is service.state is State.AWAIT_WELCOME
    _deliver(service, client, wire.Welcome(1, 1, "s"))
    assert client.state is service.state is State.READY
    _deliver(service, client, wire.SegmentGranted(2, 1, 65536, 2))
    service.receive_data(client.send_request(REQUEST))
    assert service.next_event() == REQUEST
    client.receive_data(service.send_result_json(3, b'{"text":"hi"}'))
    assert client.next_event() == wire.Result(3, {"text": "hi"})
    _deliver(service, client, wire.Error(4, int(ErrorCode.BAD_SLOT), "no such slot"))  # a request's error
    assert client.state is service.state is State.READY
    _deliver(client, service, wire.Bye(0, "client closed"))
    assert client.state is service.state is State.CLIENT_DONE
    _deliver(service, client, wire.Result(5, {}))  # what was in flight is still answered
    _deliver(service, client, wire.Bye(0, "the service is shutting down"))
    assert client.state is service.state is State.CLOSED


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
@pytest.mark.parametrize("kind", list(EVENTS), ids=lambda k: k.__name__)
def test_every_event_in_every_state_is_allowed_exactly_as_the_table_says(state: State, kind: type) -> None:
    role, event = EVENTS[kind]
    allowed = kind in wire.TABLE[state][role]
    client, service = _at(state)
    sender, receiver = (client, service) if role is CLIENT else (service, client)
    if allowed:
        _deliver(sender, receiver, event)
        assert sender.state is receiver.state is wire.TABLE[state][role][kind]
        return
    with pytest.raises((ProtocolError, SessionClosed)):
        sender.send(event)
    assert sender.state is state  # a refused event moves nothing
    receiver.receive_data(wire.encode(event))
    with pytest.raises(ProtocolError) as info:
        receiver.next_event()
    assert info.value.code == ErrorCode.UNEXPECTED_FRAME
    assert info.value.request_id is None  # the stream is lost: the session ends


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_each_role_sends_only_its_own_events_and_bye(state: State) -> None:
    for role in Role:
        for kind in wire.TABLE[state][role]:
            assert kind is wire.Bye or EVENTS[kind][0] is role


def test_a_closed_direction_refuses_with_session_closed_and_a_premature_one_with_unexpected_frame() -> None:
    client, _ = _at(State.SERVICE_DONE)
    with pytest.raises(SessionClosed):
        client.send_request(REQUEST)
    assert client.may_send(wire.Bye)  # it may still say goodbye
    client, _ = _pair()
    with pytest.raises(ProtocolError) as info:
        client.send_request(REQUEST)
    assert info.value.code == ErrorCode.UNEXPECTED_FRAME
    _, service = _at(State.CLIENT_DONE)
    with pytest.raises(SessionClosed):
        service.send(wire.SegmentGranted(2, 1, 65536, 2))  # nobody reads a grant after BYE


def test_an_error_about_the_connection_is_the_services_last_word() -> None:
    client, service = _at(State.AWAIT_WELCOME)
    _deliver(service, client, wire.Error(0, int(ErrorCode.SESSION_LIMIT), "full"))  # HELLO refused
    assert client.state is service.state is State.SERVICE_DONE
    assert not service.may_send(wire.Result)


def test_eof_moves_the_state_like_the_peers_bye() -> None:
    client, service = _at(State.READY)
    service.receive_data(b"")
    assert service.next_event() is None
    assert service.state is State.CLIENT_DONE
    assert service.may_send(wire.Result) and not service.may_send(wire.SegmentGranted)
    client.receive_data(b"")
    assert client.next_event() is None
    assert client.state is State.SERVICE_DONE


def test_a_frame_error_in_ready_names_its_request_and_moves_nothing() -> None:
    client, service = _at(State.READY)
    client.receive_data(wire.HEADER.pack(wire.MAGIC, 1, wire.FrameType.RESULT, 0, 9, 2) + b"[]")
    with pytest.raises(ProtocolError) as info:
        client.next_event()
    assert (info.value.code, info.value.request_id) == (ErrorCode.MALFORMED, 9)
    service.receive_data(wire.HEADER.pack(wire.MAGIC, 1, 99, 0, 10, 0))
    with pytest.raises(ProtocolError) as info:
        service.next_event()
    assert (info.value.code, info.value.request_id) == (ErrorCode.UNKNOWN_FRAME_TYPE, 10)
    assert client.state is service.state is State.READY


def test_the_old_protocol_module_is_the_same_package() -> None:
    from shmbridge import protocol

    assert protocol.encode is wire.encode and protocol.State is wire.State
    conn = protocol.ServerConnection(4096)
    conn.receive_data(wire.encode(wire.Hello(1)))
    assert isinstance(conn.next_event(), wire.Hello)
    conn.welcomed()  # sent WELCOME without the connection: requests may flow
    assert conn.state is State.READY
    assert protocol.CLIENT_MAY_SEND[State.READY] == {wire.Alloc, wire.OcrRequest, wire.Bye}
