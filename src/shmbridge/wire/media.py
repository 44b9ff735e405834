"""What a client and the HTTP door agree on about images and headers, defined once for both sides.

Owns the encoded formats the service parses, their media types, the raw-pixels media type, how a
Pillow mode maps to the pixels the service decodes (so a client that decodes a file itself sends exactly
what the service would have read), and the header a fallback request carries. It must never import
Pillow or open an image: both sides do that themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import PixelFormat

__all__ = [
    "ALLOWED_FORMATS", "ALPHA_MODES", "FALLBACK_HEADER", "GRAY_MODES", "MEDIA_TYPES", "RAW_MEDIA_TYPE",
    "SIXTEEN_BIT_MODES", "decoded_mode",
]  # fmt: skip

#: Pillow format names the service parses (GIF too, because the old service took it); a client refuses
#: other formats before sending anything.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
#: The media type a client sends each format as.
MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
}
RAW_MEDIA_TYPE = "application/octet-stream"
#: Pillow modes with an alpha channel (decoded as RGBA) and of one channel (decoded as 8-bit gray).
ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBa", "RGBA"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
GRAY_MODES = frozenset({"L", "1", "I", "F"}) | SIXTEEN_BIT_MODES

#: Header a client sets on requests it sends because shared memory failed (counted in
#: shmbridge_fallbacks_total). HTTP header names are case-insensitive.
FALLBACK_HEADER = "X-Shmbridge-Fallback"


def decoded_mode(mode: str, info: Mapping[str, Any]) -> tuple[str, PixelFormat]:
    """The Pillow mode an image of ``mode`` (with ``info``) is converted to, and its pixel format."""
    if mode in ALPHA_MODES or (mode == "P" and "transparency" in info):
        return "RGBA", PixelFormat.RGBA
    if mode in GRAY_MODES:
        return "L", PixelFormat.GRAY
    return "RGB", PixelFormat.RGB
