"""The session wire protocol, sans I/O (in the manner of h11): bytes in, events out; events in, bytes out.

Nothing in this package touches a socket, a thread or a clock, so the session server, both session
clients, the HTTP door and the fuzz tests share it and it is tested without one. ``docs/protocol.md`` is
the normative description of version 1; this package implements it, and must never change a byte of it
(``tests/bridge/test_protocol_v1.py`` pins every frame).

- ``frames``: the header, the OCR_REQUEST struct and every code on the wire;
- ``events``: one immutable event per frame type; ERROR to and from typed exceptions;
- ``codec``: encode, the frame splitter (with the one-``unpack`` path for plain OCR requests), decode;
- ``connection``: the one state table of both roles and the ``Connection`` it drives;
- ``slots``: size classes, the bounds rule, and the ledger of who owns each slot (free, caller, service);
- ``options``: ``OcrOptions`` from loose fields, the region of interest, options to and from OCR_REQUEST;
- ``limits``: the limits WELCOME and ``/api/v1/bridge/info`` report, from one table;
- ``media``: the image formats, media types and headers a client and the HTTP door share.

Every public name of those modules is importable from here.
"""

from __future__ import annotations

from . import codec, connection, events, frames, limits, media, options, slots
from .codec import *  # noqa: F403
from .connection import *  # noqa: F403
from .events import *  # noqa: F403
from .frames import *  # noqa: F403
from .limits import *  # noqa: F403
from .media import *  # noqa: F403
from .options import *  # noqa: F403
from .slots import *  # noqa: F403

__all__ = [
    *frames.__all__, *events.__all__, *codec.__all__, *connection.__all__, *slots.__all__, *options.__all__,
    *limits.__all__, *media.__all__,
]  # fmt: skip
