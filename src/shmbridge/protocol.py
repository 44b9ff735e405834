"""The old name of ``shmbridge.wire``: every name it had, re-exported, for code written before the package.

New code imports ``shmbridge.wire``. Two names exist only here: ``ServerConnection``, the service's
``wire.Connection`` with the ``welcomed()`` its I/O layer used to call after sending WELCOME (a
``Connection`` learns that from ``send``), and ``CLIENT_MAY_SEND``, the client's column of
``wire.TABLE``. This module must never hold logic of its own.
"""

from __future__ import annotations

from .wire import *  # noqa: F403
from .wire import DEFAULT_MAX_BODY, TABLE, Connection, Role, State

#: What the client may send in each state (the client's column of ``wire.TABLE``).
CLIENT_MAY_SEND: dict[State, frozenset[type]] = {state: frozenset(TABLE[state][Role.CLIENT]) for state in State}


class ServerConnection(Connection):
    """The service's view of one session (``wire.Connection(Role.SERVICE)``)."""

    def __init__(self, max_body: int = DEFAULT_MAX_BODY) -> None:
        super().__init__(Role.SERVICE, max_body)

    def welcomed(self) -> None:
        """Call after sending WELCOME encoded without this connection: requests may flow from now on."""
        self._move(State.READY)
