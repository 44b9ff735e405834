"""``serve``'s flags, generated from ``ServiceConfig``'s fields: one flag per field, named like its variable.

``http_port`` becomes ``--http-port`` and ``SHMBRIDGE_HTTP_PORT``; the help line is the field's description
plus its default and its variable, so a field added to ``ServiceConfig`` appears here with no edit. Older
spellings stay as aliases (``ALIASES``). Values are handed to ``ServiceConfig`` as written, so a flag, a
variable and a config file accept the same text and fail with the same message. This module must never
validate a value itself or run anything.
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ..config import ServiceConfig
from ..environment import variable_for
from ..values import format_size, is_size, parse_options, split_list

#: Spellings from before the flags were generated; they keep working.
ALIASES: dict[str, tuple[str, ...]] = {
    "engine_options": ("--engine-option",),
    "engine_workers": ("--workers",),
    "socket_path": ("--socket",),
    "http_host": ("--host",),
    "http_port": ("--port",),
    "allowed_uids": ("--allow-uid",),
    "allowed_gids": ("--allow-gid",),
}
#: Short "off" spellings of boolean fields, next to the generated ``--no-<field>``.
NEGATIONS: dict[str, str] = {"http_enabled": "--no-http", "shm_enabled": "--no-shm"}


class FlagValueError(ValueError):
    """A flag's text could not be read; ``flag`` says which."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"{flag}: {message}")
        self.flag = flag


def flag_for(field: str) -> str:
    return "--" + field.replace("_", "-")


def where_to_set(field: str) -> str:
    """``--http-port / SHMBRIDGE_HTTP_PORT``: what a message tells a person to change."""
    return f"{flag_for(field)} / {variable_for(field)}"


def _kind(info: FieldInfo) -> str:
    annotation = info.annotation
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "bool"
    if origin is list or annotation is list:
        return "list"
    if origin is dict or annotation is dict:
        return "dict"
    if is_size(info.metadata):
        return "size"
    return "value"


def _metavar(info: FieldInfo) -> str:
    kind = _kind(info)
    if kind == "size":
        return "SIZE"
    if kind == "list":
        return "N[,N...]"
    if kind == "dict":
        return "KEY=VALUE"
    args = set(typing.get_args(info.annotation)) - {type(None)}
    base = info.annotation if not args else next(iter(args))
    return {int: "N", float: "SECONDS", Path: "PATH"}.get(base, "TEXT")  # type: ignore[call-overload]


def default_text(info: FieldInfo) -> str:
    """The default as a person would write it (``512MiB``, ``on``, ``1000,1001``)."""
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    else:
        return "required"
    kind = _kind(info)
    if kind == "bool":
        return "on" if value else "off"
    if kind == "size":
        return format_size(value)
    if kind == "list":
        return ",".join(str(item) for item in value) or "none"
    if kind == "dict":
        return ",".join(f"{key}={item}" for key, item in value.items()) or "none"
    return "unset" if value is None else str(value)


def help_for(name: str, info: FieldInfo) -> str:
    description = info.description or name.replace("_", " ")
    extra = f"; also {', '.join(ALIASES[name])}" if name in ALIASES else ""
    if name in NEGATIONS:
        extra += f"; {NEGATIONS[name]} turns it off"
    text = f"{description} (default: {default_text(info)}; env {variable_for(name)}{extra})"
    return text.replace("%", "%%")


def add_service_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``ServiceConfig`` field, in the order the fields are declared."""
    group = parser.add_argument_group(
        "settings", "each also reads SHMBRIDGE_<NAME> and --config FILE; flags win over variables, variables over files"
    )
    for name, info in ServiceConfig.model_fields.items():
        options = [flag_for(name), *ALIASES.get(name, ())]
        kind = _kind(info)
        if kind == "bool":
            group.add_argument(flag_for(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_for(name, info))  # fmt: skip
            if name in NEGATIONS:
                group.add_argument(NEGATIONS[name], dest=name, action="store_false", help=argparse.SUPPRESS)
        elif kind in ("list", "dict"):
            group.add_argument(*options, dest=name, action="append", metavar=_metavar(info),
                               help=help_for(name, info) + "; repeatable")  # fmt: skip
        else:
            group.add_argument(*options, dest=name, metavar=_metavar(info), help=help_for(name, info))


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags gave, as text for ``ServiceConfig`` to validate (repeated flags merged)."""
    given: dict[str, Any] = {}
    for name, info in ServiceConfig.model_fields.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        kind = _kind(info)
        try:
            if kind == "list":
                value = [item for text in value for item in split_list(text)]  # type: ignore[union-attr]
            elif kind == "dict":
                merged: dict[str, Any] = {}
                for text in value:
                    merged.update(parse_options(text))  # type: ignore[arg-type]
                value = merged
        except ValueError as exc:  # json.JSONDecodeError included
            raise FlagValueError(flag_for(name), str(exc)) from None
        given[name] = value
    return given
