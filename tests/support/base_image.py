"""A local ``python:3.11`` base image made with debootstrap, for building deploy/Dockerfile with no registry.

Owns the recipe (Debian bookworm minbase with python3, venv and pip; ``python``/``pip`` links; no
EXTERNALLY-MANAGED; the host's CA bundle and /etc/pip.conf, so pip inside the build reaches the same package
index as the host), the cache of its root filesystem as a tarball keyed by that recipe, and importing it
into a daemon. The cache lives outside any checkout (``cache_dir``), so a fresh clone on the same machine
reuses it. It must never pull an image, and never leave a debootstrap tree or its mounts behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.docker_engine import PrivateDockerd
from tests.support.host_cleanup import kill_processes_naming, unmount_all_under

BASE_TAG = "local/python:3.11-bookworm"
SUITE = "bookworm"  # Python 3.11, as python:3.11-slim-bookworm
PACKAGES = ("python3", "python3-venv", "python3-pip")
HOST_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")
#: Shell run inside the new root after debootstrap; part of the cache key, so editing it rebuilds the base.
FINISH = """set -e
ln -sf python3 /usr/bin/python
ln -sf pip3 /usr/bin/pip
rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/* /tmp/* /root/.cache
"""
DEBOOTSTRAP_TIMEOUT = 900


class BaseImageUnavailable(Exception):
    """The base image cannot be made here (no Debian mirror, debootstrap failed); tests skip with it."""


def cache_dir() -> Path:
    """``$SHMBRIDGE_TEST_CACHE``, else /var/cache/shmbridge-tests as root, else ~/.cache/shmbridge-tests."""
    if configured := os.environ.get("SHMBRIDGE_TEST_CACHE"):
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/shmbridge-tests")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shmbridge-tests"


def _deb822_mirrors(text: str) -> list[str]:
    mirrors = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.MULTILINE))
        if fields.get("Enabled", "yes").lower() == "no" or "deb" not in fields.get("Types", "").split():
            continue
        if "main" not in fields.get("Components", "").split():
            continue
        suites = fields.get("Suites", "").split()
        if any("-" not in suite for suite in suites):  # the distribution itself, not -security or -updates
            mirrors += fields.get("URIs", "").split()
    return mirrors


def _one_line_mirrors(text: str) -> list[str]:
    mirrors = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 4 and words[0] == "deb" and "-" not in words[2] and "main" in words[3:]:
            mirrors.append(words[1])
    return mirrors


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the machine's apt already uses (deb822 ``.sources`` or one-line ``.list`` files)."""
    found: list[str] = []
    for path in sorted(etc_apt.glob("sources.list.d/*.sources")):
        found += _deb822_mirrors(path.read_text(errors="replace"))
    for path in [etc_apt / "sources.list", *sorted(etc_apt.glob("sources.list.d/*.list"))]:
        if path.is_file():
            found += _one_line_mirrors(path.read_text(errors="replace"))
    usable = [uri for uri in found if uri.startswith(("http://", "https://"))]
    if not usable:
        raise BaseImageUnavailable(f"no http(s) Debian mirror with 'main' in {etc_apt}'s sources")
    return usable[0].rstrip("/")


def recipe() -> dict[str, object]:
    """Everything the base depends on; its hash names the cached tarball."""
    host_files = {}
    for name in HOST_FILES:
        path = Path(name)
        host_files[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {"suite": SUITE, "variant": "minbase", "packages": PACKAGES, "mirror": apt_mirror(),
            "finish": FINISH, "host_files": host_files}  # fmt: skip


def recipe_key() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One builder at a time per cache directory (two runs on one machine wait for each other)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _debootstrap(target: Path, mirror: str) -> None:
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(target), mirror]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise BaseImageUnavailable(f"debootstrap {SUITE} from {mirror} failed: {tail}")
    for name in HOST_FILES:
        if Path(name).is_file():
            shutil.copyfile(name, target / name.lstrip("/"))
    subprocess.run(["chroot", str(target), "/bin/sh", "-c", FINISH], check=True, capture_output=True, timeout=120)


def _build_tarball(destination: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=destination.parent))
    try:
        root = work / "root"
        root.mkdir(mode=0o755)
        # On a tmpfs dpkg's many fsyncs cost nothing (on a loaded disk they dominate); on disk where it cannot.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g,mode=0755", "shmbridge-debootstrap", str(root)],
                       capture_output=True, timeout=30, check=False)  # fmt: skip
        _debootstrap(root, apt_mirror())
        partial = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True, timeout=600)
        partial.rename(destination)  # same filesystem: a reader never sees half a tarball
    finally:
        kill_processes_naming(work)
        # debootstrap mounts /proc and /sys in the target while it runs: never delete through a mount.
        still_mounted = unmount_all_under(work)
        if still_mounted:
            raise BaseImageUnavailable(f"could not unmount {still_mounted}; left {work} in place")
        shutil.rmtree(work, ignore_errors=True)


def base_tarball() -> tuple[Path, bool]:
    """The cached root filesystem for the current recipe, built if missing; (path, was it cached)."""
    directory = cache_dir()
    key = recipe_key()
    tarball = directory / f"python3.11-{SUITE}-{key}.tar"
    with _locked(directory):
        if tarball.is_file():
            return tarball, True
        _build_tarball(tarball)
        for stale in directory.glob(f"python3.11-{SUITE}-*.tar"):
            if stale != tarball:
                stale.unlink(missing_ok=True)  # an older recipe's base
        return tarball, False


def import_base(daemon: PrivateDockerd) -> tuple[str, bool]:
    """Make ``BASE_TAG`` exist in ``daemon`` from the cached tarball; (tag, was the tarball cached)."""
    tarball, cached = base_tarball()
    changes = ("--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]')  # as python:3.11-slim has them
    daemon.run("import", *changes, str(tarball), BASE_TAG, timeout=600)
    return BASE_TAG, cached
