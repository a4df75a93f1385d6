"""Where compile time goes: the phases of one compile, timed by the code that runs them.

    step = graphc.compile(train_step)
    step(x, y)
    print(step.compile_times(x, y))      # tracing, each pass, lowering, LLVM, loading, first run

The compiler opens a ``CompileTimes`` record for every graph it compiles and
makes it the current one; the passes, the lowering and the backend each wrap
their work in ``phase(name)``, which adds the seconds to the current record
(and does nothing when no compile is being recorded, so the same code runs
outside ``graphc.compile``).  Work done in other processes (LLVM compiling
modules in parallel) is added with ``add_worker_time``: it is CPU time spent
alongside the wall-clock phase that waited for it.  ``GRAPHC_TIMINGS=1``
prints each record to standard error as its compile finishes.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class CompileTimes:
    """Seconds per phase of one compile, in the order the phases first ran.

    ``phases`` are wall-clock time in this process; ``worker_phases`` CPU time in
    worker processes during them.  ``cache`` says how the compile cache served it:
    ``hit`` (loaded, nothing optimized), ``miss`` (compiled and stored) or ``off``.
    """
    graph: str
    phases: dict[str, float] = field(default_factory=dict)
    worker_phases: dict[str, float] = field(default_factory=dict)
    cache: str = "off"

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    def add_worker_time(self, name: str, seconds: float) -> None:
        self.worker_phases[name] = self.worker_phases.get(name, 0.0) + seconds

    @property
    def total(self) -> float:
        return sum(self.phases.values())

    def __str__(self) -> str:
        width = max(len(name) for name in (*self.phases, *self.worker_phases, "total"))
        lines = [f"compile of {self.graph} (cache {self.cache}):"]
        lines += [f"  {name:<{width}}  {seconds * 1e3:9.1f} ms" for name, seconds in self.phases.items()]
        lines.append(f"  {'total':<{width}}  {self.total * 1e3:9.1f} ms")
        if self.worker_phases:
            lines.append("  in worker processes (CPU time, during the phases above):")
            lines += [f"  {name:<{width}}  {seconds * 1e3:9.1f} ms" for name, seconds in self.worker_phases.items()]
        return "\n".join(lines)


_current: contextvars.ContextVar[CompileTimes | None] = contextvars.ContextVar("graphc_compile_times",
                                                                               default=None)


@contextlib.contextmanager
def recording(times: CompileTimes) -> Iterator[CompileTimes]:
    """Make ``times`` the record that ``phase`` adds to while the block runs."""
    token = _current.set(times)
    try:
        yield times
    finally:
        _current.reset(token)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase ``name`` of the compile being recorded (if any).

    A phase entered inside another counts only once: the inner one's time is taken
    out of the outer one, so the phases add up to the wall time.
    """
    times = _current.get()
    if times is None:
        yield
        return
    outer = _inner_seconds.get()
    token = _inner_seconds.set([0.0])
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        inner = _inner_seconds.get()[0]
        _inner_seconds.reset(token)
        times.add(name, seconds - inner)
        if outer is not None:
            outer[0] += seconds


def add_worker_time(name: str, seconds: float) -> None:
    """Add CPU time spent in a worker process on phase ``name`` to the current record."""
    times = _current.get()
    if times is not None:
        times.add_worker_time(name, seconds)


def report(times: CompileTimes) -> None:
    """Print ``times`` to standard error when ``GRAPHC_TIMINGS`` asks for it."""
    if os.environ.get("GRAPHC_TIMINGS", "") not in ("", "0"):
        print(times, file=sys.stderr)


# Seconds spent in phases nested in the phase being timed (None outside any phase).
_inner_seconds: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("graphc_inner_seconds",
                                                                                     default=None)
