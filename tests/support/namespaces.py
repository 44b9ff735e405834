"""A container boundary without Docker: run a process in its own mount, network and IPC namespaces.

``isolated_command`` wraps a command with ``unshare`` so that, inside, the process gets:

- a new network namespace (no route to the host's loopback: HTTP to the service is impossible),
- a new IPC namespace (no System V / POSIX message queues shared),
- a new mount namespace in which ``/tmp``, ``/dev/shm`` and ``/mnt`` are fresh empty tmpfs mounts, and
  the one shared directory is bind-mounted at ``/mnt/shared``.

The code tree (the virtualenv) stays visible read-only, as an image would be: what the process shares
with the host at run time is the shared directory and nothing else. Needs root or user namespaces;
``namespace_support`` tells whether this machine allows it and why not.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

INSIDE = "/mnt/shared"


def namespace_support() -> str | None:
    """``None`` if isolated processes can run here, else the reason they cannot."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux 'unshare' is not installed"
    probe = subprocess.run(
        [unshare, "--mount", "--net", "--ipc", "--fork", "--", "sh", "-c", "mount -t tmpfs t /mnt && true"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    if probe.returncode != 0:
        return f"unshare is not permitted here: {probe.stderr.strip() or probe.returncode}"
    return None


def isolated_command(shared_dir: Path, argv: list[str], *, workdir: str = INSIDE) -> list[str]:
    """``argv`` wrapped to run behind the boundary, with ``shared_dir`` at ``/mnt/shared``."""
    script = " && ".join(
        [
            "mount --make-rprivate /",
            f"mount --bind {shlex.quote(str(shared_dir))} /tmp",  # park it before /mnt is covered
            "mount -t tmpfs shmb-mnt /mnt",
            f"mkdir {INSIDE}",
            f"mount --move /tmp {INSIDE}",
            "mount -t tmpfs shmb-tmp /tmp",
            "mount -t tmpfs shmb-shm /dev/shm",
            f"cd {shlex.quote(workdir)}",
            "exec " + shlex.join(argv),
        ]
    )
    return ["unshare", "--mount", "--net", "--ipc", "--fork", "--kill-child", "--", "sh", "-c", script]
