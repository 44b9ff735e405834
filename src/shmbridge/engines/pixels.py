"""Pixel plumbing between a transport's view and an engine: crop as a view, convert at most once.

Every copy made here is counted and returned, so the service's ``bytes_copied`` metric tells the truth
about the zero-copy path.
"""

from __future__ import annotations

import numpy as np

from ..errors import ErrorCode, InvalidRequest
from ..models import PixelFormat, Roi

# Channel index maps from a source order to a target order, for the 3/4-channel swaps.
_ORDER = {
    PixelFormat.RGB: "rgb",
    PixelFormat.BGR: "bgr",
    PixelFormat.RGBA: "rgba",
    PixelFormat.BGRA: "bgra",
}
# Preference when an engine takes several formats: the cheapest conversion first.
_GRAY_WEIGHTS = {"r": 0.299, "g": 0.587, "b": 0.114}


def validate_image(image: np.ndarray, pixel_format: PixelFormat) -> None:
    """Reject arrays that are not uint8 H×W(×C) matching ``pixel_format``."""
    if image.dtype != np.uint8:
        raise InvalidRequest(f"pixels must be uint8, not {image.dtype}", code=ErrorCode.SHAPE_MISMATCH)
    channels = 1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else -1
    if channels != pixel_format.channels:
        raise InvalidRequest(
            f"pixel format {pixel_format.value} has {pixel_format.channels} channel(s); "
            f"the image has shape {image.shape}",
            code=ErrorCode.SHAPE_MISMATCH,
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidRequest(f"empty image of shape {image.shape}", code=ErrorCode.BAD_DIMENSIONS)


def crop(image: np.ndarray, roi: Roi | None) -> np.ndarray:
    """The region of interest as a view of ``image`` (never a copy)."""
    if roi is None:
        return image
    roi.check_inside(image.shape[0], image.shape[1])
    return image[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width]


def convert(
    image: np.ndarray,
    pixel_format: PixelFormat,
    native: frozenset[PixelFormat],
    accepts_strides: bool,
) -> tuple[np.ndarray, PixelFormat, int]:
    """Bring ``image`` into a format the engine takes, copying at most once.

    Returns the array to hand over, its format, and the number of bytes copied (0 on the zero-copy path).
    """
    if pixel_format in native:
        if accepts_strides or _is_c_contiguous(image):
            return image, pixel_format, 0
        copied = np.ascontiguousarray(image)
        return copied, pixel_format, copied.nbytes
    target = _pick_target(pixel_format, native)
    converted = _convert_pixels(image, pixel_format, target)
    return converted, target, converted.nbytes


def _is_c_contiguous(image: np.ndarray) -> bool:
    return bool(image.flags.c_contiguous)


def _pick_target(source: PixelFormat, native: frozenset[PixelFormat]) -> PixelFormat:
    same_channels = [fmt for fmt in native if fmt.channels == source.channels]
    if same_channels:
        return sorted(same_channels)[0]
    for preferred in (PixelFormat.BGR, PixelFormat.RGB, PixelFormat.GRAY, PixelFormat.BGRA, PixelFormat.RGBA):
        if preferred in native:
            return preferred
    raise InvalidRequest(f"no conversion from {source.value} to any of {sorted(native)}")


def _convert_pixels(image: np.ndarray, source: PixelFormat, target: PixelFormat) -> np.ndarray:
    """One contiguous output array in ``target`` order, written in a single pass where numpy allows."""
    if source is PixelFormat.GRAY:
        channels = np.repeat(image[:, :, None], 3, axis=2)
        if target.channels == 4:
            alpha = np.full((*image.shape, 1), 255, dtype=np.uint8)
            return np.concatenate([channels, alpha], axis=2)
        return channels
    order = _ORDER[source]
    if target is PixelFormat.GRAY:
        weights = np.array([_GRAY_WEIGHTS[c] for c in order[:3]], dtype=np.float32)
        return (image[:, :, :3] @ weights).clip(0, 255).astype(np.uint8)
    wanted = _ORDER[target]
    index = [order.index(c) for c in wanted[:3]]
    out = np.empty((*image.shape[:2], len(wanted)), dtype=np.uint8)
    out[:, :, :3] = image[:, :, index]
    if len(wanted) == 4:
        out[:, :, 3] = image[:, :, 3] if len(order) == 4 else 255
    return out
