"""A private Docker engine for the container tests: install it where we may, start it, run the CLI, tear it down.

Owns one ``dockerd`` per test session with its own data root, exec root, socket, pidfile and empty config
file, all on a tmpfs of its own (on disk where it cannot mount one), started with ``--bridge=none
--iptables=false``: no bridge, no veth, no address in a private range, no rule in the host's firewall.
Containers use ``--network none`` or ``--network host``. It must never pull from a registry (every image
comes from ``docker import`` or ``docker build`` on a local base), never touch the machine's own Docker
(``/var/lib/docker``, ``/run/docker.sock``, ``/etc/docker``), and never leave a daemon, container, mount or
file behind: ``stop`` removes everything, also after a failed start.

``engine_unavailable`` says why no engine can run here (not root, no apt-get, a failed install); tests skip
with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.host_cleanup import kill_processes_naming, pids_naming, unmount_all_under

#: Debian packages the container tests need: the engine, the base-image builder, Compose v1.
APT_PACKAGES = ("docker.io", "debootstrap", "docker-compose")
REQUIRED_COMMANDS = ("dockerd", "debootstrap", "docker-compose")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
TMPFS_SIZE = "12g"


class EngineUnavailable(Exception):
    """No private Docker engine can run on this machine; the message says why (tests skip with it)."""


def _missing_commands() -> list[str]:
    return [name for name in REQUIRED_COMMANDS if shutil.which(name) is None]


def _apt_install(packages: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", *packages]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL)


def ensure_installed() -> None:
    """Install the Debian packages if a command is missing; raises ``EngineUnavailable`` where we cannot."""
    missing = _missing_commands()
    if not missing:
        return
    if os.geteuid() != 0:
        raise EngineUnavailable(f"{', '.join(missing)} missing and not root, so apt-get cannot install them")
    if shutil.which("apt-get") is None:
        raise EngineUnavailable(f"{', '.join(missing)} missing and there is no apt-get to install them")
    done = _apt_install(APT_PACKAGES)
    if done.returncode != 0:  # a stale package list is the usual cause: refresh it once and retry
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
        done = _apt_install(APT_PACKAGES)
    if done.returncode != 0 or _missing_commands():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise EngineUnavailable(f"apt-get install {' '.join(APT_PACKAGES)} failed: {tail}")


def engine_unavailable() -> str | None:
    """``None`` where a private engine may be started here, else the reason it cannot."""
    if not Path("/proc/self/mountinfo").exists():
        return "not Linux: a private dockerd needs Linux"
    if os.geteuid() != 0:
        return f"a private dockerd needs root (uid {os.geteuid()}); rootless Docker is not set up by the tests"
    try:
        ensure_installed()
    except EngineUnavailable as exc:
        return str(exc)
    return None


def _cli_path() -> str:
    """The CLI shipped with the ``dockerd`` we start (another ``docker`` earlier on PATH may be newer or a stub)."""
    dockerd = shutil.which("dockerd")
    if dockerd:  # Debian: /usr/sbin/dockerd and /usr/bin/docker; a static install: both in one directory
        for beside in (Path(dockerd).parent / "docker", Path(dockerd).parent.parent / "bin" / "docker"):
            if beside.exists():
                return str(beside)
    found = shutil.which("docker")
    if found is None:
        raise EngineUnavailable("dockerd is installed but no docker CLI is")
    return found


@dataclass
class PrivateDockerd:
    """One running private daemon; ``run`` and ``env`` (for docker-compose) reach it and nothing else."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    cli: str = field(default_factory=_cli_path)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        """For the CLI and docker-compose: this daemon's socket, a private CLI config, no BuildKit (not here)."""
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.root / "cli"),
            "DOCKER_BUILDKIT": "0",
            "COMPOSE_DOCKER_CLI_BUILD": "0",
        }

    def log(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``docker ARGS`` against this daemon; raises with the output when ``check`` and it fails."""
        done = subprocess.run(
            [self.cli, *args], capture_output=True, text=True, timeout=timeout, env=self.env, stdin=subprocess.DEVNULL
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self) -> None:
        # A tmpfs of its own: image layers never touch the disk, and teardown is one unmount instead of
        # deleting a whole image tree file by file. Only pages written count; the size is a ceiling.
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0711", "shmbridge-docker",
                        str(self.root)], capture_output=True, timeout=30, check=False)  # fmt: skip
        (self.root / "cli").mkdir(parents=True, exist_ok=True)
        config = self.root / "daemon.json"
        config.write_text("{}\n")  # never the machine's /etc/docker/daemon.json
        argv = [
            "dockerd",
            f"--config-file={config}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--host=unix://{self.socket}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineUnavailable(f"dockerd exited with {self.process.returncode}:\n{self.log()}")
            if self.socket.exists() and self.run("version", timeout=20, check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise EngineUnavailable(f"dockerd did not answer within {START_TIMEOUT:.0f}s:\n{self.log()}")

    def versions(self) -> dict[str, str]:
        """Engine and Compose versions, for the report and the docs."""
        engine = self.run("version", "--format", "{{.Server.Version}}", check=False).stdout.strip()
        compose = subprocess.run(["docker-compose", "version", "--short"], capture_output=True, text=True, timeout=60)
        return {"engine": engine, "compose": compose.stdout.strip()}

    def remove_all_containers(self) -> None:
        listed = self.run("ps", "-aq", check=False, timeout=60)
        ids = listed.stdout.split()
        if ids:
            self.run("rm", "-f", "-v", *ids, check=False, timeout=120)

    def stop(self) -> list[str]:
        """Stop the daemon and remove its whole tree; returns what is left behind (should be nothing).

        Each step runs even if the one before failed: a daemon that will not stop is killed, and whatever
        it left running or mounted under its directory is ended and unmounted by path.
        """
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError, AssertionError):
                self.remove_all_containers()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        # containerd and its shims outlive dockerd by design (live restore): end those that run from our tree.
        kill_processes_naming(self.root)
        left: list[str] = [f"process {pid} still runs from {self.root}" for pid in pids_naming(self.root)]
        still_mounted = unmount_all_under(self.root)
        if still_mounted:
            left.append(f"still mounted: {still_mounted}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        return left


def start_private_dockerd(parent: Path | None = None) -> PrivateDockerd:
    """A started daemon in a fresh directory; on any failure everything is removed before raising."""
    root = Path(tempfile.mkdtemp(prefix="shmbridge-dockerd-", dir=parent))
    daemon = PrivateDockerd(root)
    try:
        daemon.start()
    except BaseException:
        daemon.stop()
        raise
    return daemon
