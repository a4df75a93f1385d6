"""Counts the environment may set (threads, compile processes), defaulting to the usable CPUs."""
from __future__ import annotations

import os

from graphc.errors import BackendError


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def count_from_environment(variable: str, what: str) -> int:
    """The positive count environment ``variable`` sets, else ``usable_cpus()``; anything but a
    positive number is a BackendError naming the variable (``what`` says what it counts)."""
    value = os.environ.get(variable, "")
    if not value.strip():
        return usable_cpus()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise BackendError(f"{variable}={value!r}: give a positive number of {what}")
    return count
