"""Values as people write them in flags, ``SHMBRIDGE_*`` variables and config files.

Owns the parsing (and the display) of sizes with units (``64MiB``, ``2GiB``), comma-separated lists
(``1000,1001``) and ``KEY=VALUE`` options, as annotated types that ``ServiceConfig`` fields use. JSON
(``[1000]``, ``{"k": 1}``) keeps working for lists and options. It must never read the environment or
know about flags: the same value means the same thing wherever it was written.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
SIZE_HINT = "bytes, or a size with a unit: 64MiB, 2GiB, 512KiB (KiB/MiB/GiB are powers of 1024, kB/MB/GB of 1000)"


def parse_size(value: object) -> object:
    """``"64MiB"`` → 67108864; numbers and anything else pass through for pydantic to judge."""
    if not isinstance(value, str):
        return value
    match = _SIZE.match(value)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{value!r} is not a size")
    number, unit = match.groups()
    size = float(number) * _UNITS[unit.lower()]
    if size != int(size):
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return int(size)


def format_size(size: int) -> str:
    """The shortest exact spelling: ``536870912`` → ``512MiB``."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def split_list(value: object) -> object:
    """``"1000, 1001"`` → ``["1000", "1001"]`` (pydantic converts the items); JSON lists still work."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_options(value: object) -> object:
    """``"checksum_mode=full,delay_ms=5"`` → a dict (each value read by ``_option_value``); a JSON object works."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        return json.loads(text)
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"engine options are KEY=VALUE, not {item!r}")
        options[key.strip()] = _option_value(raw.strip())
    return options


#: Python's spellings, which people type as often as JSON's: as strings they would all be true.
_WORDS = {"True": True, "False": False, "None": None}


def _option_value(raw: str) -> Any:
    """A value read as JSON when it is JSON (``false``, ``5``, ``1.5``), as Python's ``True``, ``False``
    or ``None``, else as the string itself."""
    if raw in _WORDS:
        return _WORDS[raw]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def is_size(metadata: list[Any]) -> bool:
    """Whether a field's metadata marks it as a ``Size`` (for help text and the hint in errors)."""
    return any(isinstance(item, BeforeValidator) and item.func is parse_size for item in metadata)


Size = Annotated[int, BeforeValidator(parse_size)]
IntList = Annotated[list[int], NoDecode, BeforeValidator(split_list)]
EngineOptions = Annotated[dict[str, Any], NoDecode, BeforeValidator(parse_options)]
