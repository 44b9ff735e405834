"""The image: base, user, HEALTHCHECK, nothing fetched at run time, an allow-list .dockerignore.

Rules and how they are checked: ``tests/deploy/manifests.py`` and docs/deployment.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.deploy.manifests import (
    DOCKERFILE,
    REPO,
    SERVICE_ID,
)

# -- Dockerfile ---------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "dangling line continuation"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_dockerfile_base_and_user() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    bases = [args.get(a.split()[0].strip("${}"), a.split()[0]) for k, a in instructions if k == "FROM"]
    assert all(base.startswith("python:3.11-slim") for base in bases), bases
    users = [a for k, a in final_stage() if k == "USER"]
    assert users, "the runtime stage needs a USER"
    uid, _, gid = users[-1].partition(":")
    assert uid not in {"0", "root", ""} and gid not in {"0", "root"}
    assert (int(uid), int(gid)) == (SERVICE_ID, SERVICE_ID)
    run_text = " ".join(a for k, a in final_stage() if k == "RUN")
    assert f"--uid {SERVICE_ID}" in run_text and f"-o {SERVICE_ID} -g {SERVICE_ID} -m 0770 /run/shmbridge" in run_text


def test_dockerfile_healthcheck_and_command() -> None:
    stage = final_stage()
    (healthcheck,) = [a for k, a in stage if k == "HEALTHCHECK"]
    assert "/health" in healthcheck and "python" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    (cmd,) = [a for k, a in stage if k == "CMD"]
    assert json.loads(cmd) == ["shmbridge", "serve"]
    assert not [a for k, a in stage if k == "ENTRYPOINT"]
    env = " ".join(a for k, a in stage if k == "ENV")
    assert "SHMBRIDGE_SOCKET_PATH=/run/shmbridge/ocr.sock" in env
    assert "SHMBRIDGE_HTTP_HOST=0.0.0.0" in env and "SHMBRIDGE_HTTP_PORT=8080" in env


def test_dockerfile_fetches_nothing_at_run_time() -> None:
    stage = final_stage()
    run_time = [a for k, a in stage if k in {"CMD", "ENTRYPOINT", "HEALTHCHECK"}]
    for text in run_time:
        assert not re.search(r"\b(curl|wget|pip|apt-get|git)\b", text), text
        for url in re.findall(r"https?://[^\s'\"]+", text):
            assert url.startswith(("http://127.0.0.1", "http://localhost")), url
    assert not [a for k, a in dockerfile_instructions() if k == "ADD" and "://" in a], "no remote ADD"
    # The offline proof ships in the image and runs there with networking off (tests/deploy/test_image.py).
    assert "/opt/shmbridge/check_offline.py" in DOCKERFILE.read_text()


def test_dockerfile_needs_nothing_only_buildkit_has() -> None:
    """Debian's docker.io has no buildx: the legacy builder must accept the file as BuildKit does."""
    first = DOCKERFILE.read_text().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first), "a # syntax= line asks for a BuildKit frontend"
    for keyword, arguments in dockerfile_instructions():
        flags = re.findall(r"^(?:--[a-z-]+(?:=\S+)?\s+)*", arguments)[0]
        if keyword == "RUN":
            assert not flags, f"RUN {flags}: the legacy builder refuses RUN flags"
        if keyword == "COPY":
            assert not re.search(r"--(link|parents|exclude|chmod)\b", flags), flags
    assert "<<" not in " ".join(a for k, a in dockerfile_instructions() if k == "RUN"), "no heredocs"


def test_dockerignore_is_an_allow_list_covering_the_copies() -> None:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    assert {"pyproject.toml", "src", "deploy/example_client.py", "deploy/check_offline.py"} <= allowed
    assert not {a for a in allowed if a.startswith((".venv", ".git", "tests"))}
    copied = " ".join(a for k, a in dockerfile_instructions() if k == "RUN")
    for name in ("deploy/example_client.py", "deploy/check_offline.py"):
        assert name in copied and (REPO / name).is_file()
