"""``serve``'s generated flags and its one-line errors: every field is a flag with help, default and variable."""

from __future__ import annotations

import os
import re
import socket
import warnings
from pathlib import Path

import pytest

from shmbridge.cli import build_parser, main
from shmbridge.cli.serve_flags import flag_for
from shmbridge.config import ServiceConfig
from shmbridge.environment import unknown_variable_warnings, variable_for

from .conftest import clean_env, shmbridge


def _serve_parser():  # type: ignore[no-untyped-def]
    return build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]


def test_every_field_is_a_flag_with_help_default_and_variable() -> None:
    options = {opt for action in _serve_parser()._actions for opt in action.option_strings}
    missing = [name for name in ServiceConfig.model_fields if flag_for(name) not in options]
    assert not missing, f"fields without a flag: {missing}"

    done = shmbridge("serve", "--help")
    assert done.returncode == 0
    text = re.sub(r"\s+", " ", done.stdout.partition("\nsettings:")[2])  # argparse wraps help lines
    for name in ServiceConfig.model_fields:
        entry = re.search(re.escape(flag_for(name)) + r"[ ,].*?\(default: ([^;]+); env (\S+?)[;)]", text)
        assert entry, f"{flag_for(name)}: no help line with a default and a variable"
        assert entry.group(2) == variable_for(name)
    assert "developer" not in done.stdout and "Run the OCR service" in done.stdout
    for action in _serve_parser()._actions:  # the flags outside ServiceConfig too (--config, --log-level)
        if action.help not in (None, "==SUPPRESS==") and action.option_strings != ["-h", "--help"]:
            assert "default: " in action.help and "env SHMBRIDGE_" in action.help, action.option_strings


def test_old_flag_spellings_still_parse() -> None:
    args = build_parser().parse_args(["serve", "--workers", "3", "--socket", "/tmp/x.sock", "--host", "0.0.0.0",
                                      "--port", "0", "--no-http", "--no-shm", "--allow-uid", "5", "--allow-uid",
                                      "6,7", "--engine-option", "checksum_mode=full", "--no-warm-up",
                                      "--low-latency"])  # fmt: skip
    from shmbridge.cli.serve_flags import given_settings

    given = given_settings(args)
    assert given["engine_workers"] == "3" and given["socket_path"] == "/tmp/x.sock"
    assert given["http_host"] == "0.0.0.0" and given["http_port"] == "0"
    assert given["http_enabled"] is False and given["shm_enabled"] is False and given["warm_up"] is False
    assert given["allowed_uids"] == ["5", "6", "7"] and given["engine_options"] == {"checksum_mode": "full"}


def test_sizes_take_units_and_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHMBRIDGE_ALLOWED_UIDS", "1000,1001")
    monkeypatch.setenv("SHMBRIDGE_SESSION_BYTES", "64MiB")
    config = ServiceConfig.load(engine="null", max_frame_bytes="2GiB", total_bytes="4GiB")
    assert config.allowed_uids == [1000, 1001]
    assert config.session_bytes == 64 * 2**20 and config.max_frame_bytes == 2 * 2**30
    monkeypatch.setenv("SHMBRIDGE_ALLOWED_UIDS", "[1000]")  # the JSON spelling keeps working
    assert ServiceConfig.load(engine="null").allowed_uids == [1000]


def test_an_unknown_variable_names_the_closest_real_one() -> None:
    (message,) = unknown_variable_warnings({"SHMBRIDGE_PORT": "9000", "SHMBRIDGE_HTTP_HOST": "::"})
    assert "SHMBRIDGE_PORT" in message and "SHMBRIDGE_HTTP_PORT" in message


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        ((), {"SHMBRIDGE_HTTP_PORT": "abc"}, ("SHMBRIDGE_HTTP_PORT", "--http-port", "whole number")),
        (("--log-level", "verbose"), {}, ("--log-level", "verbose", "debug, info")),
        ((), {"SHMBRIDGE_LOG_LEVEL": "loud"}, ("SHMBRIDGE_LOG_LEVEL", "debug, info")),
        (("--max-frame-bytes", "64Mo"), {}, ("--max-frame-bytes", "64MiB")),
        (("--session-bytes", "8MiB", "--total-bytes", "4MiB"), {}, ("--session-bytes", "--total-bytes")),
        (("--engine", "nope"), {}, ("--engine", "rapidocr")),
    ],
)
def test_bad_values_get_one_line_naming_the_flag(
    args: tuple[str, ...], env: dict[str, str], names: tuple[str, ...], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """In this process (``main``, as the entry point calls it): each case stops before anything starts."""
    for name in [name for name in os.environ if name.startswith("SHMBRIDGE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main sets its own
    try:
        status = main(["serve", "--socket", str(tmp_path / "s.sock"), *args])
    except SystemExit as exit_:  # argparse and the log level leave through parser.exit
        status = exit_.code
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for name in names:
        assert name in lines[0]
    assert not (tmp_path / "s.sock").exists()


def test_a_bad_variable_is_one_line_from_the_real_command(tmp_path: Path) -> None:
    done = shmbridge("serve", "--socket", str(tmp_path / "s.sock"), env=clean_env(SHMBRIDGE_HTTP_PORT="abc"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "shmbridge serve: SHMBRIDGE_HTTP_PORT 'abc': Input should be a valid integer, unable to parse string as an "
        "integer; give a whole number with --http-port / SHMBRIDGE_HTTP_PORT"
    ]


def test_an_unknown_variable_is_warned_about_when_the_command_runs(tmp_path: Path) -> None:
    done = shmbridge("serve", "--socket", str(tmp_path / "s.sock"), "--engine", "nope",
                     env=clean_env(SHMBRIDGE_PORT="9000"), timeout=60)  # fmt: skip
    assert "SHMBRIDGE_PORT" in done.stderr and "did you mean SHMBRIDGE_HTTP_PORT" in done.stderr


def test_a_taken_port_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = shmbridge("serve", "--engine", "null", "--socket", str(tmp_path / "s.sock"), "--port", str(port),
                         timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("shmbridge serve:")]
    assert f"port {port} is already in use" in line and "--http-port" in line and "SHMBRIDGE_HTTP_PORT" in line
    assert not (tmp_path / "s.sock").exists()  # nothing started


def test_version_and_python_dash_m() -> None:
    done = shmbridge("--version")
    assert done.returncode == 0 and re.match(r"shmbridge \S+ \(session protocol \d+\)", done.stdout)


def test_deploy_files_and_docs_use_only_real_variable_names() -> None:
    from shmbridge.environment import DEPLOYMENT_VARIABLES, known_variables

    repo = Path(__file__).resolve().parents[2]
    files = [*sorted((repo / "deploy").rglob("*")), *sorted((repo / "docs").glob("*.md")), repo / "README.md"]
    used = {
        (name, path.relative_to(repo).as_posix())
        for path in files
        if path.is_file()
        for name in re.findall(r"SHMBRIDGE_[A-Z][A-Z_]*[A-Z]", path.read_text(errors="replace"))
    }
    allowed = known_variables() | DEPLOYMENT_VARIABLES | {"SHMBRIDGE_SOCKET"}  # the deprecated alias, named in docs
    unknown = sorted(pair for pair in used if pair[0] not in allowed)
    assert not unknown, f"not a variable shmbridge reads: {unknown}"


def test_engine_option_values_read_as_json_or_as_python_spells_them() -> None:
    """``batch_invariant=False`` typed the Python way must not arrive as the (true) string "False"."""
    from shmbridge.values import parse_options

    assert parse_options("a=false,b=False,c=True,d=None,e=5,f=1.5,g=fast,h=") == {
        "a": False, "b": False, "c": True, "d": None, "e": 5, "f": 1.5, "g": "fast", "h": ""
    }  # fmt: skip
