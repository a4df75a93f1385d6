"""Per-kernel timings of one run of a compiled graph, as every backend reports them.

An executable's ``profile(inputs)`` runs the graph's kernels in order, timing
each, and returns a ``Profile``: one ``KernelTiming`` per kernel (the value
it computes, how the fusion pass made it, the bytes it stores, the seconds it
took, the best of the runs).  ``Profile.table()`` prints the slowest kernels
first: where a training step's time goes.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphc.ir.graph import Node
from graphc.ir.types import format_bytes


@dataclass(frozen=True)
class KernelTiming:
    """One kernel: its node's name, what it is, the bytes it stores and its run time."""
    name: str
    kind: str             # the fused kernel's kind ("contraction", ...) or the primitive's op
    stored_bytes: int
    seconds: float


def describe_kernel(node: Node) -> str:
    """A fused kernel's kind and the ops that run in it, or a lone primitive's op."""
    if node.op != "fused":
        return node.op
    ops = dict.fromkeys(n.op for n in node.attrs["body"].nodes if n.op != "full")
    return f"{node.attrs['kind']}: {' '.join(ops)}"


@dataclass(frozen=True)
class Profile:
    """The kernels of one graph in run order, each with its best time over the runs."""
    graph_name: str
    kernels: list[KernelTiming]
    runs: int
    note: str = ""          # what else the backend reports (the OpenCL device and its transfers)

    @property
    def total_seconds(self) -> float:
        return sum(k.seconds for k in self.kernels)

    def slowest(self, count: int = 10) -> list[KernelTiming]:
        return sorted(self.kernels, key=lambda k: -k.seconds)[:count]

    def table(self, count: int = 20) -> str:
        """The ``count`` slowest kernels as aligned text, after a summary line."""
        total = self.total_seconds or 1.0
        lines = [f"{self.graph_name}: {len(self.kernels)} kernels, {self.total_seconds * 1e3:.2f} ms "
                 f"(best of {self.runs} run{'s' if self.runs != 1 else ''} per kernel)"]
        if self.note:
            lines.append(self.note)
        rows = [(f"%{k.name}", f"{k.seconds * 1e3:.3f}", f"{k.seconds / total:.1%}", format_bytes(k.stored_bytes),
                 k.kind) for k in self.slowest(count)]
        header = ("kernel", "ms", "share", "stores", "what")
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            lines.append("  ".join(cell.ljust(w) if i in (0, 4) else cell.rjust(w)
                                   for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
