"""The ``SHMBRIDGE_*`` variables: one name per setting for the service, the client and the CLI.

Owns the names the client and CLI read (``SHMBRIDGE_URL``, ``SHMBRIDGE_SOCKET_PATH``, ``SHMBRIDGE_LOG_LEVEL``,
``SHMBRIDGE_CONFIG``, ``SHMBRIDGE_CAPTURE_COPY``),
the deprecated spellings that still work (with a warning), and the warning for a variable nobody reads,
which names the closest real one. The service's own names come from ``ServiceConfig``'s fields, so a new
field is known here without an edit. It must never decide what a value means (``values.py`` and
``ServiceConfig`` do) and never raise for a variable it does not know.
"""

from __future__ import annotations

import difflib
import logging
import os
import warnings
from collections.abc import Mapping

PREFIX = "SHMBRIDGE_"
URL_VARIABLE = "SHMBRIDGE_URL"
SOCKET_VARIABLE = "SHMBRIDGE_SOCKET_PATH"  # the service's field ``socket_path``: one name on both sides
LOG_LEVEL_VARIABLE = "SHMBRIDGE_LOG_LEVEL"
CONFIG_VARIABLE = "SHMBRIDGE_CONFIG"  # serve's --config FILE
CAPTURE_COPY_VARIABLE = "SHMBRIDGE_CAPTURE_COPY"  # 1: client.capture() copies through the X socket
#: Old spelling → the one name. Read with a warning; never removed without a release note.
DEPRECATED = {"SHMBRIDGE_SOCKET": SOCKET_VARIABLE}
CLIENT_VARIABLES = frozenset(
    {URL_VARIABLE, SOCKET_VARIABLE, LOG_LEVEL_VARIABLE, CONFIG_VARIABLE, CAPTURE_COPY_VARIABLE}
)
#: Names the files around shmbridge use for themselves (the launchd wrapper's binary, compose's uid and gid,
#: the test suite's image cache): they reach the process's environment there, and are not typos.
DEPLOYMENT_VARIABLES = frozenset({"SHMBRIDGE_BIN", "SHMBRIDGE_UID", "SHMBRIDGE_GID", "SHMBRIDGE_TEST_CACHE"})

log = logging.getLogger("shmbridge.environment")


def variable_for(field: str) -> str:
    """The variable of a ``ServiceConfig`` field: ``http_port`` → ``SHMBRIDGE_HTTP_PORT``."""
    return PREFIX + field.upper()


def limit_hint(field: str) -> str:
    """What a limit error adds: the service flag and variable that raise the limit of ``field``."""
    return f"raise it with the service's --{field.replace('_', '-')} / {variable_for(field)}"


def known_variables() -> frozenset[str]:
    from .config import ServiceConfig

    return frozenset(variable_for(name) for name in ServiceConfig.model_fields) | CLIENT_VARIABLES


def closest_variable(name: str, known: frozenset[str]) -> str | None:
    """The real variable someone most likely meant: one that has every word of ``name`` (``PORT`` →
    ``HTTP_PORT``), else the nearest spelling."""
    words = set(name.removeprefix(PREFIX).split("_"))
    holding = sorted((v for v in known if words <= set(v.removeprefix(PREFIX).split("_"))), key=len)
    if holding:
        return holding[0]
    suffixes = {variable.removeprefix(PREFIX): variable for variable in known}
    close = difflib.get_close_matches(name.removeprefix(PREFIX), sorted(suffixes), n=1, cutoff=0.6)
    return suffixes[close[0]] if close else None


def unknown_variable_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per ``SHMBRIDGE_*`` variable that nothing reads."""
    environ = os.environ if environ is None else environ
    known = known_variables()
    messages = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known or upper in DEPRECATED or upper in DEPLOYMENT_VARIABLES:
            continue
        closest = closest_variable(name.upper(), known)
        hint = f"; did you mean {closest}?" if closest else "; `shmbridge serve --help` lists every variable"
        messages.append(f"{name} is set but shmbridge does not read it{hint}")
    return messages


def warn_unknown_variables(environ: Mapping[str, str] | None = None) -> None:
    for message in unknown_variable_warnings(environ):
        log.warning("%s", message)


def socket_from_environment(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The session socket the environment names, and which variable named it (``None, None`` if none)."""
    environ = os.environ if environ is None else environ
    value = environ.get(SOCKET_VARIABLE)
    old = next((name for name, new in DEPRECATED.items() if new == SOCKET_VARIABLE and environ.get(name)), None)
    if old is not None:
        ignored = f"; {SOCKET_VARIABLE} wins" if value else ""
        warnings.warn(f"{old} is deprecated: set {SOCKET_VARIABLE}, the name the service reads{ignored}",
                      FutureWarning, stacklevel=4)  # fmt: skip
    if value:
        return value, SOCKET_VARIABLE
    if old is not None:
        return environ[old], f"{old} (deprecated)"
    return None, None


def url_from_environment(default: str, environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get(URL_VARIABLE) or default
