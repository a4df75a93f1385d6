"""Rematerialization: compute a cheap kernel again for its late readers instead of keeping its output.

In a training step the forward pass makes values that the backward pass reads
again much later: a BatchNorm + ReLU kernel's output is read by the next
convolution at once, and by that convolution's weight gradient and the ReLU's
mask near the end of the step.  Its buffer stays alive in between, although
its inputs (the convolution's output, the per-channel statistics, the
parameters) are kept alive until then anyway, for BatchNorm's own gradient.
Computing the kernel a second time just before its late readers lets the
first buffer die after its early readers, and costs one elementwise pass.

A *rematerialization* splits the readers of a cheap kernel K (an elementwise
or movement primitive, a forward max/avg pool, or a fused kernel of those
kinds; never a contraction, reduction, pooling gradient, index or random op) at the widest gap between two of them
in the node order: the late readers get a duplicate of K, a new node with a
new name reading the same inputs, placed just before the first of them.  It
is a candidate only when

- every input of K is still alive at that first late reader, so that the
  duplicate keeps no buffer alive longer than it already lives, and
- at least one kernel lies in the gap, so that K's bytes really stop being
  live somewhere.

Candidates are tried largest saving first (K's bytes times the kernels in the
gap), each on the graph the previous ones made, and each is kept only if the
peak of live bytes (``memory.peak_live_bytes``, the memory plan's lower
bound) does not rise.  A duplicate is itself cheap, so its own readers may be
split again.  A copy made while the peak lay elsewhere may save nothing once
later copies have lowered it, so then each copy is undone again, the last
made first, wherever that leaves the peak as it is.  If in the end the peak is
no lower than before, the pass returns its input untouched: recomputing that
saves no arena bytes is only extra work.  Both copies compute the same op on
the same inputs, so every result is the same, bit for bit.

**Order.**  Liveness depends on the node order, and the order that counts is
the one the memory plan sees, after the schedule pass.  So this pass first
schedules the graph itself and decides on that order, and returns the graph
in it, each duplicate just before its first late reader.  The schedule pass
that runs next may reorder the kernels again, but it keeps its input's order
whenever its own would have the higher peak, so the peak this pass reached is
the most the final order can have.  (Running this pass after the schedule
pass and scheduling again would do the same work with the pipeline in a less
obvious shape.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from ..errors import GraphcError
from ..ir.graph import Graph, Node, unused_name
from ..ir.types import TupleType
from ..ops.registry import get_op
from .fusion import ELEMENTWISE, MOVEMENT, classify, is_kernel
from .manager import register_pass
from .memory import KernelFacts, last_uses, peak_live_bytes
from .schedule import schedule

# Fused kernels of these kinds loop once over their output, reading each operand at most
# a few times per element: as cheap to run again as the primitives they are made of.
CHEAP_FUSED_KINDS = (ELEMENTWISE, MOVEMENT)


@dataclass(frozen=True)
class Remat:
    """A plan to compute ``kernel`` again just before the first of ``late_readers``,
    which then read the copy; ``saving`` is its bytes times the kernels it stops spanning."""
    kernel: Node
    late_readers: tuple[Node, ...]
    saving: int


def rematerialize(graph: Graph) -> Graph:
    """``graph`` with cheap kernels computed again for their late readers where that lowers
    the peak of live bytes; ``graph`` itself when nothing does (see the module docstring)."""
    scheduled = schedule(graph)
    peak_of = _PeakMeter()
    with_copies, copies = _add_copies(scheduled, peak_of)
    result = _drop_needless_copies(with_copies, copies, peak_of)
    return result if peak_of(result) < peak_of(scheduled) else graph


class _PeakMeter:
    """``peak_live_bytes`` of the many trial graphs one run makes, sharing what is known of
    the kernels they have in common, so that each trial costs one walk over its kernels."""

    def __init__(self):
        self.facts = KernelFacts()

    def __call__(self, graph: Graph) -> int:
        return peak_live_bytes(graph, self.facts)


def _add_copies(graph: Graph, peak_of: _PeakMeter) -> tuple[Graph, dict[str, str]]:
    """Apply every candidate that does not raise the peak, the largest saving first; returns
    the new graph and each duplicate's original (by name), in the order they were made."""
    peak = peak_of(graph)
    copies: dict[str, str] = {}
    tried: set[str] = set()
    candidates = candidates_of(graph)           # found again only when a copy changes the graph
    while (remat := _best_candidate(candidates, tried)) is not None:
        tried.add(remat.kernel.name)
        trial, duplicate = _apply(graph, remat)
        trial_peak = peak_of(trial)
        if trial_peak <= peak:
            graph, peak = trial, trial_peak
            copies[duplicate.name] = remat.kernel.name
            candidates = candidates_of(graph)
    return graph, copies


def _drop_needless_copies(graph: Graph, copies: dict[str, str], peak_of: _PeakMeter) -> Graph:
    """Give each duplicate's readers back to its original wherever the peak stays as it is:
    a copy made while the peak lay elsewhere may in the end save nothing.  The last made
    go first, so an original is always still there (a copy may be the original of a later one)."""
    peak = peak_of(graph)
    for duplicate, original in reversed(copies.items()):
        trial = _merge(graph, duplicate, original)
        if peak_of(trial) <= peak:
            graph = trial
    return graph


# -- finding candidates ---------------------------------------------------------------

def is_cheap(node: Node) -> bool:
    """Whether ``node`` is cheap enough to compute twice: about one pass over its output.
    A multi-output kernel is never copied: its outputs have readers of their own."""
    if isinstance(node.type, TupleType):
        return False
    if node.op == "fused":
        return node.attrs["kind"] in CHEAP_FUSED_KINDS or _pooling_kernel(node.attrs["body"])
    return classify(node) in (ELEMENTWISE, MOVEMENT) or get_op(node.op).cheap


def _pooling_kernel(body) -> bool:
    """A fused window kernel whose anchor is cheap (forward pooling: it reads each input element a
    few times for one output element, unlike its gradients), with only cheap work around it."""
    return all(classify(n) in (ELEMENTWISE, MOVEMENT) or get_op(n.op).cheap or n.op == "full"
               for n in body.nodes) and any(get_op(n.op).cheap for n in body.nodes)


def _best_candidate(candidates: list[Remat], tried: set[str]) -> Remat | None:
    """The untried rematerialization with the largest saving (the earliest kernel on a tie)."""
    untried = [remat for remat in candidates if remat.kernel.name not in tried]
    return max(untried, key=lambda remat: remat.saving, default=None)


def candidates_of(graph: Graph) -> list[Remat]:
    """Every rematerialization that the node order of ``graph`` allows, in kernel order."""
    kernels = [node for node in graph.nodes if is_kernel(node)]
    index = {kernel: i for i, kernel in enumerate(kernels)}
    last = last_uses(graph)
    escaping = set(graph.outputs) | {value for _, value in graph.writes}
    users = graph.users()
    candidates = []
    for kernel in kernels:
        # A returned or written-back value lives to the end however it is computed.
        if kernel in escaping or not is_cheap(kernel):
            continue
        readers = sorted(set(users[kernel]), key=index.__getitem__)
        if len(readers) < 2:
            continue
        split = _widest_gap(readers, index)
        first_late = index[readers[split]]
        gap = first_late - index[readers[split - 1]] - 1
        if gap > 0 and _inputs_alive_at(kernel, first_late, last):
            candidates.append(Remat(kernel, tuple(readers[split:]), kernel.type.nbytes * gap))
    return candidates


def _widest_gap(readers: list[Node], index: dict[Node, int]) -> int:
    """Where to split two or more ``readers`` (in kernel order): the position of the first
    reader after the widest gap between two neighbours (the earliest such gap on a tie)."""
    return max(range(1, len(readers)), key=lambda i: (index[readers[i]] - index[readers[i - 1]], -i))


def _inputs_alive_at(kernel: Node, position: int, last: dict[Node, int]) -> bool:
    """Whether every input of ``kernel`` is still needed at kernel ``position`` anyway.

    Graph inputs and scalar constants take no arena bytes, so they always count as alive.
    """
    return all(last[operand] >= position for operand in kernel.inputs if operand in last)


# -- rewriting ------------------------------------------------------------------------

def _apply(graph: Graph, remat: Remat) -> tuple[Graph, Node]:
    """A new graph in which a duplicate of ``remat.kernel``, placed just before its first
    late reader, feeds the late readers, and the duplicate; ``graph`` itself is not changed."""
    kernel, late = remat.kernel, set(remat.late_readers)
    taken = {node.name for node in (*graph.inputs, *graph.nodes)}
    duplicate = Node(unused_name(f"{kernel.name}.remat", taken), kernel.op, kernel.inputs, kernel.attrs, kernel.type,
                     loc=kernel.loc)

    def operand_for(reader: Node, operand: Node) -> Node:
        return duplicate if operand is kernel and reader in late else operand

    return _rewired(graph, operand_for, {remat.late_readers[0]: duplicate}), duplicate


def _merge(graph: Graph, duplicate_name: str, original_name: str) -> Graph:
    """A new graph without the node named ``duplicate_name``, whose readers read the node
    named ``original_name`` (which computes the same value, earlier) instead."""
    by_name = {node.name: node for node in graph.nodes}
    duplicate, original = by_name[duplicate_name], by_name[original_name]

    def operand_for(reader: Node, operand: Node) -> Node:
        return original if operand is duplicate else operand

    merged = _rewired(graph, operand_for, {})
    return Graph(merged.name, merged.inputs, [node for node in merged.nodes if node.name != duplicate_name],
                 merged.outputs, merged.writes)


def _rewired(graph: Graph, operand_for: Callable[[Node, Node], Node], insert_before: dict[Node, Node]) -> Graph:
    """A copy of ``graph`` whose nodes read ``operand_for(node, operand)`` for each operand,
    with ``insert_before[node]`` placed before ``node``; only nodes whose operands change
    (directly or through an earlier change) are new objects."""
    values: dict[Node, Node] = {node: node for node in graph.inputs}
    nodes = []
    for node in graph.nodes:
        if node in insert_before:
            inserted = insert_before[node]
            values[inserted] = inserted
            nodes.append(inserted)
        operands = [values[operand_for(node, operand)] for operand in node.inputs]
        values[node] = node if operands == list(node.inputs) else _with_inputs(node, operands)
        nodes.append(values[node])
    return Graph(graph.name, graph.inputs, nodes, [values[node] for node in graph.outputs],
                 [(target, values[value]) for target, value in graph.writes])


def _with_inputs(node: Node, inputs: list[Node]) -> Node:
    return Node(node.name, node.op, inputs, node.attrs, node.type, loc=node.loc)


# -- the pass ------------------------------------------------------------------------

def run(graph: Graph, options: Mapping[str, object]) -> Graph:
    """Compute cheap kernels again for their late readers where that lowers the peak (no options)."""
    if options:
        raise GraphcError(f"remat: unknown option(s) {', '.join(sorted(options))}; it takes none")
    return rematerialize(graph)


register_pass("remat", run)
