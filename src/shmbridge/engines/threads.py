"""The thread budget: how many inference threads each engine worker may use.

Each engine worker runs its own inference session, and a session left to its runtime's default starts a
thread per core. Two workers on two cores then run four busy threads that take turns on two cores, and
each request pays for the switching. The budget keeps workers × threads within the CPUs this process may
run on (its affinity mask, which ``taskset`` and container CPU sets narrow), so the split is chosen, not
stumbled into.

What it must never do: change an option the operator set (an explicit thread count always wins), or
count the machine's CPUs when the process may use fewer.
"""

from __future__ import annotations

import os
from typing import Any


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask where the platform has one, else the CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS has no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """Inference threads for each of ``workers`` engine instances: the usable CPUs shared out evenly,
    at least one (more workers than CPUs each get one thread; the operator asked for that oversubscription)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    return max(1, (usable_cpus() if cpus is None else cpus) // workers)


def with_thread_budget(options: dict[str, Any], option: str | None, workers: int) -> dict[str, Any]:
    """``options`` with ``option`` (the engine's thread-count keyword) set from the budget, unless the
    engine has no such option or the operator already gave one."""
    if option is None or options.get(option) is not None:
        return options
    return {**options, option: threads_per_worker(workers)}
