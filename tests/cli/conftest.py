"""Fixtures for the command tests: a clean ``SHMBRIDGE_*`` environment and the shared fixtures folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SCREENS = SHARED / "fixtures" / "screens"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without a developer's own ``SHMBRIDGE_*`` variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHMBRIDGE_")}
    return {**env, "COLUMNS": "200", **extra}


def shmbridge(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
              timeout: float = 90) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``python -m shmbridge`` (the command as users run it) with a bounded time."""
    return subprocess.run([sys.executable, "-m", "shmbridge", *args], capture_output=True, timeout=timeout,
                          env=env or clean_env(), cwd=REPO, input=stdin, text=stdin is None)  # fmt: skip


@pytest.fixture
def screen() -> Path:
    path = SCREENS / "crop-bootstrap-signin.png"
    if not path.exists():
        pytest.skip(f"the shared fixtures are absent ({path}); they live next to the repository in ../shared")
    return path
