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


def isolated_command(
    shared_dir: Path, argv: list[str], *, workdir: str = INSIDE, keep: tuple[Path, ...] = ()
) -> list[str]:
    """``argv`` wrapped to run behind the boundary, with ``shared_dir`` at ``/mnt/shared``.

    ``keep`` names code trees (the checkout, its virtualenv) that must stay visible, read-only, at their
    own paths even when they live under ``/tmp`` (CI may clone there): they stand for the image.
    """
    steps = [
        "mount --make-rprivate /",
        "mount -t tmpfs shmb-mnt /mnt",
        f"mkdir {INSIDE}",
        f"mount --bind {shlex.quote(str(shared_dir))} {INSIDE}",
    ]
    parked = []
    roots = sorted({p.resolve() for p in keep}, key=lambda p: len(p.parts))
    roots = [p for i, p in enumerate(roots) if not any(p.is_relative_to(q) for q in roots[:i])]  # no nesting
    for index, path in enumerate(roots):
        if path.is_relative_to("/tmp"):
            stage = f"/mnt/.keep{index}"
            steps += [f"mkdir {stage}", f"mount --bind {shlex.quote(str(path))} {stage}"]
            parked.append((stage, path))
    steps.append("mount -t tmpfs shmb-tmp /tmp")
    for stage, path in parked:
        target = shlex.quote(str(path))
        steps += [f"mkdir -p {target}", f"mount --move {stage} {target}", f"rmdir {stage}",
                  f"mount -o remount,bind,ro {target}"]  # fmt: skip
    steps += ["mount -t tmpfs shmb-shm /dev/shm", f"cd {shlex.quote(workdir)}", "exec " + shlex.join(argv)]
    script = " && ".join(steps)
    return ["unshare", "--mount", "--net", "--ipc", "--fork", "--kill-child", "--", "sh", "-c", script]
