"""Zero-copy screen capture: the X server writes the screen straight into a slot (MIT-SHM 1.2, a memfd).

``client.capture()`` and ``client.watch()`` are the public doors; this package holds what they share.
Needs the ``capture`` extra (xcffib) and libxcb-shm; without them a capture raises ``CaptureUnavailable``
saying what to install. Nothing here changes the wire protocol.
"""

from .screen import FORCE_COPY_ENV, Capture, CaptureMethod, Screen, Screens, grab_into_slot
from .watch import Watcher, WatchFrame, diff_lines

__all__ = [
    "FORCE_COPY_ENV",
    "Capture",
    "CaptureMethod",
    "Screen",
    "Screens",
    "WatchFrame",
    "Watcher",
    "diff_lines",
    "grab_into_slot",
]
