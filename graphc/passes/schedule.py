"""Scheduling: reorder a graph's kernels so that fewer bytes are live at once.

Autodiff emits every weight gradient, and the optimizer every update, after
the whole backward pass, so in the traced order each gradient buffer, and
each activation that a weight-gradient kernel reads, stays alive across the
rest of the backward pass.  This pass reorders the (fused) graph by greedy
list scheduling: a kernel is ready once everything it depends on has run,
and its *gain* is the bytes it frees (operands it is the last to read) minus
the bytes it allocates (its output).  Among the ready kernels, those with a
gain of zero or more run first, the largest gain first; the others keep the
original order; ties go to the earlier kernel in the original order.  So an
optimizer update computed into its state's storage runs as soon as its
operands exist, freeing the gradient it is the last to read, and a weight
gradient runs as soon as it is the last reader of its activation.

Why the original order for kernels that raise the live bytes, rather than
the largest gain (the smallest allocation) first: a kernel with a gain of
zero or more can run now without raising the peak, but choosing among
allocating kernels by size alone cannot see which later frees an allocation
enables.  On the DCGAN step, smallest-first ran the discriminator's whole
forward pass on real images before the generator's 24.5 MiB weight
transpose, raising the peak from 26.2 to 31.1 MiB; the program's own order
for those kernels, with freeing kernels pulled forward, gives 25.7 MiB.

Besides data, two things order kernels:

- Random ops keep their relative order.  Their keys order the key updates
  but not the draws themselves (each draw reads its own key value), so the
  pass chains the draws explicitly.  A draw is a pure function of its key,
  so no result depends on this; it keeps the counter offsets increasing
  through the step, as they do when the program runs eagerly.
- A write-back value that may be computed into its state's own storage
  (``memory.donation_candidates``) runs after every other reader of the old
  state value, so that the memory plan can donate that storage to it; it
  allocates no arena bytes.  If some other reader depends on the value, the
  constraint would be a cycle, and the value is scheduled as an ordinary kernel.

Scalar constants are no kernels (``fusion.is_kernel``); each is placed just
before its first reader.  Nor is a ``tuple_get``: each follows its
multi-output kernel.

A greedy order can still lose to the program's own (delaying an update past
the other readers of its parameter keeps its operands alive longer), so the
pass keeps the original order when that has the lower peak of live bytes
(``memory.peak_live_bytes``, the memory plan's lower bound).  It only
reorders nodes, so every backend computes the same values, bit for bit.
"""
from __future__ import annotations

from typing import Mapping

from ..errors import GraphcError
from ..ir.graph import Graph, Node
from ..ops.registry import get_op
from .fusion import is_kernel
from .manager import register_pass
from .memory import KernelBuffers, donation_candidates, kernel_buffers, peak_live_bytes

# Kernel -> the kernels that must run before it.
Dependencies = dict[Node, set[Node]]


def schedule(graph: Graph) -> Graph:
    """``graph`` with its nodes in a memory-aware topological order (see the module docstring)."""
    buffers = kernel_buffers(graph)
    dependencies = _data_dependencies(buffers)
    _chain_random_ops(buffers.kernels, dependencies)
    donated = _order_donations(graph, buffers, dependencies)
    order = _greedy_order(graph, buffers, dependencies, donated)
    scheduled = Graph(graph.name, graph.inputs, _with_non_kernels(graph, buffers, order), graph.outputs,
                      graph.writes)
    return scheduled if peak_live_bytes(scheduled) <= peak_live_bytes(graph) else graph


# -- what must run before what ----------------------------------------------------------

def _data_dependencies(buffers: KernelBuffers) -> Dependencies:
    """The kernels storing each kernel's operands (graph inputs and scalar constants are always there)."""
    return {kernel: {buffers.kernel_of(operand) for operand in kernel.inputs if operand in buffers.stored_by}
            for kernel in buffers.kernels}


def _chain_random_ops(kernels: list[Node], dependencies: Dependencies) -> None:
    """Make each random op depend on the previous one, so the draws keep their order."""
    draws = [kernel for kernel in kernels if get_op(kernel.op).family == "random"]
    for earlier, later in zip(draws, draws[1:]):
        dependencies[later].add(earlier)


def _order_donations(graph: Graph, buffers: KernelBuffers, dependencies: Dependencies) -> set[Node]:
    """Make the kernel of each donation candidate depend on the other readers of its state's
    old value, where that adds no cycle; returns the candidates so ordered."""
    users = graph.users()
    dependents = _dependents(dependencies)
    donated = set()
    for value, state in donation_candidates(graph, buffers).items():
        kernel = buffers.kernel_of(value)
        readers = [user for user in users[state] if user is not kernel]
        after_kernel = _reachable_from(kernel, dependents)
        if any(reader in after_kernel for reader in readers):
            continue
        for reader in readers:
            dependencies[kernel].add(reader)
            dependents[reader].add(kernel)
        donated.add(value)
    return donated


def _dependents(dependencies: Dependencies) -> Dependencies:
    """The reverse of ``dependencies``: each kernel's kernels that must run after it."""
    dependents: Dependencies = {kernel: set() for kernel in dependencies}
    for kernel, before in dependencies.items():
        for earlier in before:
            dependents[earlier].add(kernel)
    return dependents


def _reachable_from(start: Node, dependents: Dependencies) -> set[Node]:
    """Every kernel that must run after ``start``."""
    reached: set[Node] = set()
    pending = [start]
    while pending:
        for later in dependents[pending.pop()]:
            if later not in reached:
                reached.add(later)
                pending.append(later)
    return reached


# -- the greedy order ------------------------------------------------------------------

def _greedy_order(graph: Graph, buffers: KernelBuffers, dependencies: Dependencies,
                  donated: set[Node]) -> list[Node]:
    """The kernels in list-scheduling order: the ready kernel with the best ``_priority`` first."""
    kernels = buffers.kernels
    escaping = set(graph.outputs) | {value for _, value in graph.writes}
    dependents = _dependents(dependencies)
    waiting = {kernel: len(before) for kernel, before in dependencies.items()}
    readers_left = {value: 0 for value in buffers.stored_by}
    for kernel in kernels:
        for operand in set(kernel.inputs) & readers_left.keys():
            readers_left[operand] += 1
    allocates = {kernel: sum(value.type.nbytes for value in buffers.outputs[kernel] if value not in donated)
                 for kernel in kernels}
    ready = [kernel for kernel in kernels if waiting[kernel] == 0]
    order = []
    while ready:
        best = max(ready, key=lambda k: (_priority(k, readers_left, escaping, allocates[k]), -buffers.index[k]))
        ready.remove(best)
        order.append(best)
        for operand in set(best.inputs) & readers_left.keys():
            readers_left[operand] -= 1
        for later in dependents[best]:
            waiting[later] -= 1
            if waiting[later] == 0:
                ready.append(later)
    if len(order) != len(kernels):
        raise GraphcError(f"schedule: the ordering constraints of graph {graph.name} have a cycle")
    return order


def _priority(kernel: Node, readers_left: dict[Node, int], escaping: set[Node],
              allocated: int) -> tuple[int, int]:
    """Kernels that free at least the bytes they allocate come first, the largest gain first;
    the others tie, leaving them in the original order."""
    freed = sum(operand.type.nbytes for operand in set(kernel.inputs)
                if readers_left.get(operand) == 1 and operand not in escaping)
    gain = freed - allocated
    return (1, gain) if gain >= 0 else (0, 0)


def _with_non_kernels(graph: Graph, buffers: KernelBuffers, order: list[Node]) -> list[Node]:
    """``order`` with every scalar constant just before its first reader (unread ones at the end)
    and each multi-output kernel's ``tuple_get`` nodes just after it."""
    constants = [node for node in graph.nodes if not is_kernel(node) and node.op != "tuple_get"]
    placed: set[Node] = set()
    nodes = []
    for kernel in order:
        for operand in kernel.inputs:
            if not is_kernel(operand) and operand.op != "tuple_get" and operand not in placed:
                placed.add(operand)
                nodes.append(operand)
        nodes.append(kernel)
        if kernel.op == "fused" and buffers.outputs[kernel] != [kernel]:
            nodes += buffers.outputs[kernel]
    return nodes + [constant for constant in constants if constant not in placed]


# -- the pass ------------------------------------------------------------------------

def run(graph: Graph, options: Mapping[str, object]) -> Graph:
    """Reorder the kernels so that fewer bytes are live at once (no options)."""
    if options:
        raise GraphcError(f"schedule: unknown option(s) {', '.join(sorted(options))}; it takes none")
    return schedule(graph)


register_pass("schedule", run)
