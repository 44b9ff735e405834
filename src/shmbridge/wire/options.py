"""OCR options between ``OcrOptions`` and what travels: loose fields, the region of interest, OCR_REQUEST.

Owns the one way loose fields become ``OcrOptions`` (a client's keyword arguments, an HTTP query or
body, an OCR_REQUEST's JSON options), the region of interest in its three spellings (a ``Roi``, the
struct's four integers, ``"x,y,w,h"``), and the split of options between OCR_REQUEST's struct (the
region) and its JSON (every other option that differs from its default). It must never ignore an unknown
option, and never build a model or a dict per request when the defaults travel (they travel as none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..errors import ErrorCode, InvalidRequest
from ..models import DEFAULT_OPTIONS, OcrOptions, Roi
from .events import NO_OPTIONS, OcrRequest

__all__ = [
    "OPTION_NAMES", "RoiFields", "options_from_fields", "options_of", "request_options", "roi_from_wire",
    "roi_text", "roi_to_wire",
]  # fmt: skip

OPTION_NAMES = frozenset(OcrOptions.model_fields)
RoiFields = tuple[int, int, int, int]
_NO_REQUEST_OPTIONS: tuple[None, Mapping[str, Any]] = (None, NO_OPTIONS)


def roi_to_wire(roi: Roi) -> RoiFields:
    """A region as OCR_REQUEST's struct carries it: x, y, width, height."""
    return roi.x, roi.y, roi.width, roi.height


def roi_text(roi: Roi) -> str:
    """A region as a query string or a command line writes it: ``"x,y,width,height"``."""
    return ",".join(map(str, roi_to_wire(roi)))


def roi_from_wire(value: Roi | RoiFields | list[int] | str) -> Roi:
    """A ``Roi`` from any of its spellings; ``InvalidRequest`` for one that is not a region."""
    if isinstance(value, Roi):
        return value
    if isinstance(value, str):
        return Roi.parse(value)
    try:
        x, y, width, height = value
        return Roi(x=x, y=y, width=width, height=height)
    except (TypeError, ValueError) as exc:  # not four values, or pydantic's ValidationError
        raise InvalidRequest(f"invalid option roi: {value!r} is not a region x,y,width,height ({exc})") from None


def options_from_fields(base: OcrOptions | None = None, /, **fields: Any) -> OcrOptions:
    """``OcrOptions`` from loose fields over ``base`` (the defaults when ``None``).

    A field that is ``None`` is not given; ``roi`` may be any spelling ``roi_from_wire`` reads. An unknown
    name is ``UNKNOWN_OPTION`` and a bad value ``INVALID_REQUEST`` naming the field: never ignored, never a 500.
    """
    unknown = sorted(set(fields) - OPTION_NAMES)
    if unknown:
        raise InvalidRequest(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(sorted(OPTION_NAMES))}",
                             code=ErrorCode.UNKNOWN_OPTION)  # fmt: skip
    given = {key: value for key, value in fields.items() if value is not None}
    if not given:
        return base if base is not None else DEFAULT_OPTIONS
    if "roi" in given:
        given["roi"] = roi_from_wire(given["roi"])
    try:
        return OcrOptions(**({**base.model_dump(), **given} if base is not None else given))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        code = ErrorCode.UNKNOWN_OPTION if error["type"] == "extra_forbidden" else ErrorCode.INVALID_REQUEST
        raise InvalidRequest(f"invalid option {where}: {error['msg']}", code=code) from None


def request_options(options: OcrOptions | None) -> tuple[RoiFields | None, Mapping[str, Any]]:
    """What an OCR_REQUEST carries of ``options``: the region for its struct, and the JSON options (those
    that differ from their defaults). The defaults travel as no options at all."""
    if options is None or options is DEFAULT_OPTIONS:
        return _NO_REQUEST_OPTIONS
    extra = options.model_dump(exclude_defaults=True, exclude={"roi"}, mode="json")
    return (roi_to_wire(options.roi) if options.roi is not None else None), extra


def options_of(request: OcrRequest) -> OcrOptions:
    """The options an OCR_REQUEST asks for, as the shared model; unknown keys are an error, never ignored."""
    if not request.options and request.roi is None:
        return DEFAULT_OPTIONS
    if "roi" in request.options:
        raise InvalidRequest("the region of interest travels in the request struct, not in options",
                             code=ErrorCode.UNKNOWN_OPTION)  # fmt: skip
    return options_from_fields(None, **request.options, roi=request.roi)
