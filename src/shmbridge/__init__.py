"""shmbridge: hand images to a native OCR service through shared memory, with HTTP as the fallback.

::

    import shmbridge

    with shmbridge.Client() as client:  # $SHMBRIDGE_URL or http://127.0.0.1:8080; $SHMBRIDGE_SOCKET_PATH or asked
        print(client.ocr("screenshot.png").text)

Everything a user needs is importable from here; the submodules may move. Errors: ``shmbridge.errors`` (the
main ones are also here), all rooted at ``ShmBridgeError``; API misuse raises ``UsageError`` (a
``RuntimeError``).
"""

from importlib import metadata as _metadata

from . import errors
from .client import (
    AsyncClient,
    Client,
    ClientResult,
    CommunicationMode,
    Diagnosis,
    Lifecycle,
    Mode,
    RetryPolicy,
    Timeouts,
    TransportPolicy,
)
from .compat import SharedMemoryClient, shared_memory_client
from .draw import draw
from .errors import (
    Busy,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    ErrorCode,
    FrameTooLarge,
    InvalidRequest,
    LimitExceeded,
    MemoryLimitExceeded,
    PeerRejected,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
    SessionClosed,
    SessionLimitExceeded,
    ShmBridgeError,
    TransportError,
    UsageError,
)
from .models import Box, OcrOptions, OcrResult, PixelFormat, Roi, TextLine, Timings

try:
    __version__ = _metadata.version("shmbridge")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AsyncClient",
    "Box",
    "Busy",
    "Client",
    "ClientResult",
    "CommunicationMode",
    "Diagnosis",
    "EngineError",
    "EngineTimeout",
    "EngineUnavailable",
    "ErrorCode",
    "FrameTooLarge",
    "InvalidRequest",
    "Lifecycle",
    "LimitExceeded",
    "MemoryLimitExceeded",
    "Mode",
    "OcrOptions",
    "OcrResult",
    "PeerRejected",
    "PixelFormat",
    "ProtocolError",
    "RequestTimeout",
    "RetryPolicy",
    "Roi",
    "ServiceUnavailable",
    "SessionClosed",
    "SessionLimitExceeded",
    "SharedMemoryClient",
    "ShmBridgeError",
    "TextLine",
    "Timeouts",
    "Timings",
    "TransportError",
    "TransportPolicy",
    "UsageError",
    "__version__",
    "draw",
    "errors",
    "shared_memory_client",
]
