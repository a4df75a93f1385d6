"""Memory planning: every intermediate value gets an offset in one arena.

The plan works over the graph's final node order, counting kernels only
(``graphc.ops.fused.is_kernel``: scalar constants are folded into their readers and
take no memory, and a ``tuple_get`` only names a kernel's output).  Each
kernel output is one buffer (a multi-output kernel stores one per output,
named after its ``tuple_get``), live from the kernel that writes it to the
last kernel that reads it; graph outputs and write-back values live to the
end of the step.  Graph inputs (data, parameters, buffers, optimizer state)
are the caller's and lie outside the arena.

In place: an elementwise kernel (or a reshape) reads each element of an
operand only to write the same element of its output, and so does a fused
kernel when everything its body computes from that operand keeps the order
of elements at the output's size: the operand feeds only elementwise work
(a contraction's or a pooling's epilogue included).  When such an operand of
the same size dies at that kernel, an output takes over its bytes.  This
binds the code generators to one rule: a kernel finishes each element of
its outputs (accumulating in registers or private memory) before storing
it, and never stores a partial result, so every element of an operand is
read before the same element of an output is written.

Donation: a write-back value whose kernel is the last to touch the old state
value (every other reader of it runs earlier) and reads it, if at all, only
element for element is computed straight into the state input's own storage,
as real compilers donate a parameter's buffer to its update.  Such values take
no arena bytes; ``StateWrite`` records how the kernels read each written state,
so ``check_plan`` can prove every donation legal.

Placement is greedy: buffers (an in-place chain counts as one) are placed one
by one, each into the tightest gap, 64-byte aligned, left by the already
placed buffers whose lifetimes overlap its own.  Four strategies run and the
smallest arena wins: the buffers largest first, or breadth first (the
kernels with the most live bytes first, each kernel's buffers largest
first), each placed at the bottom or at the top of its gap.  Largest first
is the classic; breadth first packs the peaks tightly, and placing at the
top of a gap leaves the bottom to the buffers that conflict with it: in the
LeNet step two same-sized gradient and activation buffers of 588 KiB must
sit at offsets 147 KiB apart for the buffers around them to fit, which only
breadth first at the top finds (arena 1.19x the lower bound before, 1.00x after).
``lower_bound_bytes``, the most arena bytes ever live at once, is what no plan
can beat; ``naive_bytes``, every kernel output side by side (donated ones
included), is what no plan should need.  ``check_plan`` proves a plan safe by
comparing every pair of arena buffers and every donation with the state's reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable

from ..errors import GraphcError
from ..ir.graph import Graph, Node
from ..ops.fused import kernel_outputs
from .fusion import keeps_element_order
from .manager import format_bytes

ALIGNMENT = 64


class MemoryPlanError(GraphcError):
    """A memory plan lets two live buffers share bytes, or breaks alignment."""


@dataclass(frozen=True)
class BufferSlot:
    """Where one kernel's output lives: ``size`` bytes at ``offset`` in the arena, from
    kernel ``first_use`` (its writer) through kernel ``last_use`` (its last reader).

    A write-back value donated its state's storage lives in the state input
    named ``into_state`` instead, and has no arena offset.
    """
    name: str
    size: int
    offset: int | None
    first_use: int
    last_use: int
    in_place_of: str | None = None     # the dying operand whose bytes this buffer reuses
    into_state: str | None = None      # the state input whose own storage this write-back value takes

    @property
    def in_arena(self) -> bool:
        return self.into_state is None

    @property
    def end(self) -> int:
        return self.offset + self.size

    def lives_with(self, other: "BufferSlot") -> bool:
        return self.first_use <= other.last_use and other.first_use <= self.last_use

    def shares_bytes_with(self, other: "BufferSlot") -> bool:
        return self.offset < other.end and other.offset < self.end


@dataclass(frozen=True)
class StateWrite:
    """A state input that the graph writes back, as its kernels read it: what a donation
    of its storage to the new value must respect."""
    name: str                          # the state input
    size: int
    value: str                         # the value written back into it
    readers: tuple[int, ...]           # kernels reading the old value; the kernel count if the graph returns it
    in_step_readers: tuple[int, ...]   # the readers that read it only element for element


@dataclass
class MemoryPlan:
    """The arena layout of one graph's intermediates, buffers in kernel order."""
    graph_name: str
    kernel_count: int
    buffers: list[BufferSlot]
    arena_bytes: int
    lower_bound_bytes: int
    naive_bytes: int
    state_writes: dict[str, StateWrite]      # by state input name

    @property
    def donated(self) -> list[BufferSlot]:
        """The write-back values computed into their state's storage, outside the arena."""
        return [buffer for buffer in self.buffers if not buffer.in_arena]

    def slot(self, name: str) -> BufferSlot:
        for buffer in self.buffers:
            if buffer.name == name:
                return buffer
        raise KeyError(f"the memory plan of {self.graph_name} has no buffer %{name}")

    def summary(self) -> str:
        text = (f"{self.graph_name}: arena {format_bytes(self.arena_bytes)} for {len(self.buffers)} buffers "
                f"over {self.kernel_count} kernels (lower bound {format_bytes(self.lower_bound_bytes)}, "
                f"naive {format_bytes(self.naive_bytes)})")
        if self.donated:
            text += (f"; write-backs computed into their state's storage: {len(self.donated)} "
                     f"({format_bytes(sum(b.size for b in self.donated))})")
        return text

    def table(self) -> str:
        """The plan as aligned text: one row per buffer, after a summary line."""
        header = ("buffer", "size", "offset", "first", "last", "in place of", "into state")
        rows = [(f"%{b.name}", str(b.size), "-" if b.offset is None else str(b.offset), str(b.first_use),
                 str(b.last_use), _name_or_blank(b.in_place_of), _name_or_blank(b.into_state))
                for b in self.buffers]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        # Names read left to right; numbers line up on their last digit.
        lines = ["  ".join(cell.ljust(w) if i in (0, 5, 6) else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
                 for row in (header, *rows)]
        return "\n".join([self.summary(), *lines])

    def draw(self, path: "str | Path") -> Path:
        """A chart of the arena over time (PNG, SVG or PDF by the file's extension):
        one rectangle per buffer, kernel index across, offset up."""
        return _draw(self, Path(path))


def _name_or_blank(name: str | None) -> str:
    return f"%{name}" if name else ""


# -- lifetimes ------------------------------------------------------------------------

@dataclass(eq=False)
class _Storage:
    """Bytes shared by a buffer and the buffers written in place over it, one after another."""
    size: int
    first_use: int
    last_use: int
    offset: int = 0

    def lives_with(self, other: "_Storage") -> bool:
        return self.first_use <= other.last_use and other.first_use <= self.last_use


@dataclass
class KernelFacts:
    """What is known of kernels, found when first asked for and shared between the graphs a pass
    makes one from another (a rewritten kernel keeps its body object, an untouched one is the same
    node): measuring each of many trial graphs then looks at no kernel twice."""
    # Each fused body's operand positions read other than element for element.  Graphs compare
    # by structure, so bodies are keyed by identity, each kept alive beside its entry.
    spoilt: dict[int, tuple[Graph, frozenset[int]]] = field(default_factory=dict)
    # Each kernel's operands read only element for element (a node's operands never change).
    in_step: dict[Node, frozenset[Node]] = field(default_factory=dict)


@dataclass(frozen=True)
class KernelBuffers:
    """A graph's kernels in order and the buffers they store.

    ``outputs[k]`` lists the values kernel ``k`` stores: the kernel itself,
    or for a multi-output kernel its ``tuple_get`` nodes in index order;
    ``stored_by[v]`` is the position of the kernel storing value ``v``.
    """
    kernels: list[Node]
    index: dict[Node, int]
    outputs: dict[Node, list[Node]]
    stored_by: dict[Node, int]
    _facts: KernelFacts = field(default_factory=KernelFacts, repr=False, compare=False)

    def read_in_step(self, kernel: Node) -> frozenset[Node]:
        """The operands that ``kernel`` reads only element for element (see ``_spoilt_operands``)."""
        in_step = self._facts.in_step
        if kernel not in in_step:
            in_step[kernel] = self._operands_read_in_step(kernel)
        return in_step[kernel]

    def _operands_read_in_step(self, kernel: Node) -> frozenset[Node]:
        if kernel.op != "fused":
            return frozenset(kernel.inputs) if keeps_element_order(kernel) else frozenset()
        body, spoilt = kernel.attrs["body"], self._facts.spoilt
        if id(body) not in spoilt:
            spoilt[id(body)] = (body, _spoilt_operands(body))
        return frozenset(kernel.inputs) - {kernel.inputs[i] for i in spoilt[id(body)][1]}

    def values(self) -> list[Node]:
        """Every stored value, in kernel order."""
        return [value for kernel in self.kernels for value in self.outputs[kernel]]

    def kernel_of(self, value: Node) -> Node:
        return self.kernels[self.stored_by[value]]


def kernel_buffers(graph: Graph, facts: KernelFacts | None = None) -> KernelBuffers:
    """The kernels of ``graph`` and the values each stores (see ``KernelBuffers``), with ``facts``
    shared with other graphs of one pass."""
    outputs = kernel_outputs(graph)
    kernels = list(outputs)
    index = {kernel: i for i, kernel in enumerate(kernels)}
    stored_by = {value: index[kernel] for kernel in kernels for value in outputs[kernel]}
    return KernelBuffers(kernels, index, outputs, stored_by, KernelFacts() if facts is None else facts)


def last_uses(graph: Graph, buffers: KernelBuffers | None = None) -> dict[Node, int]:
    """Each stored value's last reader in kernel order (its own kernel when nothing reads it);
    outputs and write-back values live to the end.  Graph inputs and scalar constants
    take no arena bytes, so they have no entry."""
    buffers = buffers or kernel_buffers(graph)
    last = dict(buffers.stored_by)
    for i, kernel in enumerate(buffers.kernels):
        for operand in kernel.inputs:
            if operand in last:
                last[operand] = max(last[operand], i)
    for node in (*graph.outputs, *(value for _, value in graph.writes)):
        if node in last:
            last[node] = len(buffers.kernels) - 1
    return last


def _reads_in_step(buffers: KernelBuffers, kernel: Node, operand: Node, output: Node) -> bool:
    """Whether ``kernel`` reads element i of ``operand`` only while writing element i of its
    outputs, and ``operand`` has the bytes of ``output``: then ``output`` may overwrite it."""
    if operand.type.nbytes != output.type.nbytes or operand.dtype.itemsize != output.dtype.itemsize:
        return False
    return operand in buffers.read_in_step(kernel)


def _spoilt_operands(body: Graph) -> frozenset[int]:
    """The positions of the operands that a fused kernel with ``body`` reads other than element
    for element.  A kernel reads an operand element for element when every use keeps the order
    of elements at the size of its outputs: an elementwise op (or reshape) reads all its operands
    so (a full-size one once, at the element being written); in a fused body, everything computed
    from the operand must be elementwise work (or a reshape) of the outputs' size.  One pass over
    the body finds them all."""
    size = body.outputs[0].type.numel
    # The body inputs each value is computed from, along element-order-keeping paths only.
    sources: dict[Node, frozenset[int]] = {inp: frozenset([i]) for i, inp in enumerate(body.inputs)}
    spoilt: set[int] = set()
    for node in body.nodes:
        reached = frozenset().union(*(sources.get(operand, ()) for operand in node.inputs))
        if not reached:
            continue
        if keeps_element_order(node) and node.type.numel == size:
            sources[node] = reached
        else:
            spoilt |= reached
    return frozenset(spoilt)


def _in_place_partner(kernel: Node, output: Node, buffers: KernelBuffers, last: dict[Node, int],
                      unavailable: set[Node]) -> Node | None:
    """The first operand whose bytes ``output`` of ``kernel`` may take over, if any."""
    here = buffers.index[kernel]
    for operand in kernel.inputs:
        dies_here = operand in buffers.stored_by and last[operand] == here and operand not in unavailable
        if dies_here and _reads_in_step(buffers, kernel, operand, output):
            return operand
    return None


def _storages(graph: Graph, buffers: KernelBuffers, last: dict[Node, int],
              donated: Collection[Node]) -> tuple[dict[Node, _Storage], dict[Node, Node]]:
    """Each arena buffer's storage (donated write-back values have none), and for in-place
    buffers the operand they overwrite (each operand at most once)."""
    # Escaping values live to the end; an operand already taken over is gone.
    unavailable = set(graph.outputs) | {value for _, value in graph.writes}
    storage_of: dict[Node, _Storage] = {}
    partner_of: dict[Node, Node] = {}
    for kernel in buffers.kernels:
        for value in buffers.outputs[kernel]:
            if value in donated:
                continue
            partner = _in_place_partner(kernel, value, buffers, last, unavailable)
            if partner is None:
                storage_of[value] = _Storage(value.type.nbytes, buffers.index[kernel], last[value])
                continue
            unavailable.add(partner)
            partner_of[value] = partner
            storage_of[value] = storage_of[partner]
            storage_of[value].last_use = last[value]
    return storage_of, partner_of


# -- donating state storage -------------------------------------------------------------

def donation_candidates(graph: Graph, buffers: KernelBuffers | None = None) -> dict[Node, Node]:
    """The write-back values (to their state inputs) that may be computed straight into the
    state's storage, provided every other reader of the old state value runs before them.

    The value's kernel must read the old value, if at all, only element for element
    (``_reads_in_step``), so each element is read before it is overwritten.  Neither the value
    nor the old state may be returned: a returned array must not alias state.  A value
    written into two states takes the storage of the first.
    """
    buffers = buffers or kernel_buffers(graph)
    returned = set(graph.outputs)
    candidates: dict[Node, Node] = {}
    for target, value in graph.writes:
        if value not in buffers.stored_by or value in candidates:
            continue
        if value in returned or target in returned:
            continue
        kernel = buffers.kernel_of(value)
        if target in kernel.inputs and not _reads_in_step(buffers, kernel, target, value):
            continue
        candidates[value] = target
    return candidates


def _state_readers(graph: Graph, buffers: KernelBuffers) -> dict[Node, list[Node]]:
    """The kernels reading each state that the graph writes back, in kernel order."""
    # One walk over the kernels (not graph.users(), which lists the readers of every value: the
    # remat pass asks this of a hundred trial graphs).
    users: dict[Node, list[Node]] = {target: [] for target, _ in graph.writes}
    for kernel in buffers.kernels:
        for operand in kernel.inputs:
            if operand in users:
                users[operand].append(kernel)
    return users


def _state_writes(graph: Graph, buffers: KernelBuffers, users: dict[Node, list[Node]]) -> dict[str, StateWrite]:
    """How the kernels read each state that the graph writes back (``users``: its readers);
    returning the old value counts as a read after the last kernel."""
    returned = set(graph.outputs)
    writes = {}
    for target, value in graph.writes:
        readers = [buffers.index[user] for user in users[target]]
        if target in returned:
            readers.append(len(buffers.kernels))
        in_step = [buffers.index[user] for user in users[target] if _reads_in_step(buffers, user, target, value)]
        writes[target.name] = StateWrite(target.name, target.type.nbytes, value.name,
                                         tuple(sorted(set(readers))), tuple(sorted(set(in_step))))
    return writes


def _donations(graph: Graph, buffers: KernelBuffers, users: dict[Node, list[Node]]) -> dict[Node, Node]:
    """The candidates (``donation_candidates``) whose kernel comes after every other reader
    of the old state value (``users``: the readers of each state), in the graph's node order:
    value -> state.  (A returned state is no candidate: the reader after the last kernel.)"""
    return {value: target for value, target in donation_candidates(graph, buffers).items()
            if all(buffers.index[reader] <= buffers.stored_by[value] for reader in users[target])}


# -- placement ------------------------------------------------------------------------

def _aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


def _place(storages: list[_Storage]) -> int:
    """Give every storage an offset by the best of the placement strategies; returns the arena size."""
    best_offsets, best_arena = None, None
    for order in (_largest_first(storages), _breadth_first(storages)):
        for at_top in (False, True):
            arena = _place_in_order(order, at_top)
            if best_arena is None or arena < best_arena:
                best_offsets, best_arena = [storage.offset for storage in storages], arena
    for storage, offset in zip(storages, best_offsets):
        storage.offset = offset
    return best_arena


def _largest_first(storages: list[_Storage]) -> list[_Storage]:
    return sorted(storages, key=lambda s: (-s.size, s.first_use))


def _breadth_first(storages: list[_Storage]) -> list[_Storage]:
    """The storages live at the kernel with the most live bytes, largest first, then those
    of the kernel with the next most, and so on."""
    live: dict[int, list[_Storage]] = {}
    for storage in storages:
        for kernel in range(storage.first_use, storage.last_use + 1):
            live.setdefault(kernel, []).append(storage)
    order: dict[int, _Storage] = {}
    for kernel in sorted(live, key=lambda k: (-sum(s.size for s in live[k]), k)):
        for storage in sorted(live[kernel], key=lambda s: (-s.size, s.first_use)):
            order.setdefault(id(storage), storage)
    return list(order.values())


def _place_in_order(order: list[_Storage], at_top: bool) -> int:
    """Give each storage in turn an offset in the tightest gap that fits it; returns the arena size."""
    placed: list[_Storage] = []
    arena = 0
    for storage in order:
        neighbours = sorted((p for p in placed if p.lives_with(storage)), key=lambda p: p.offset)
        storage.offset = _best_gap(neighbours, _aligned(storage.size), at_top)
        placed.append(storage)
        arena = max(arena, storage.offset + _aligned(storage.size))
    return arena


def _best_gap(neighbours: list[_Storage], size: int, at_top: bool) -> int:
    """The offset for ``size`` bytes in the smallest free range that fits them below or between
    ``neighbours`` (sorted by offset), at its bottom or its top; above them all if none fits."""
    best_offset, best_waste = None, None
    top = 0
    for other in neighbours:
        gap = other.offset - top
        if gap >= size and (best_waste is None or gap - size < best_waste):
            best_offset, best_waste = (other.offset - size if at_top else top), gap - size
        top = max(top, other.offset + _aligned(other.size))
    return top if best_offset is None else best_offset


def _peak_live_bytes(storages: list[_Storage], kernel_count: int) -> int:
    """The most bytes live at any one kernel: a bound no placement can beat."""
    live = [0] * (kernel_count + 1)
    for storage in storages:
        live[storage.first_use] += storage.size
        live[storage.last_use + 1] -= storage.size
    peak = running = 0
    for change in live:
        running += change
        peak = max(peak, running)
    return peak


def plan_memory(graph: Graph) -> MemoryPlan:
    """Lay out every intermediate of ``graph`` (in its node order) in one arena, computing
    write-back values into their state's storage where that is legal."""
    buffers = kernel_buffers(graph)
    last = last_uses(graph, buffers)
    users = _state_readers(graph, buffers)
    state_writes = _state_writes(graph, buffers, users)
    donations = _donations(graph, buffers, users)
    storage_of, partner_of = _storages(graph, buffers, last, donations)
    storages = _distinct(storage_of.values())
    arena = _place(storages)
    slots = [BufferSlot(value.name, value.type.nbytes, storage_of[value].offset if value in storage_of else None,
                        buffers.stored_by[value], last[value], partner_of[value].name if value in partner_of else None,
                        donations[value].name if value in donations else None)
             for value in buffers.values()]
    count = len(buffers.kernels)
    return MemoryPlan(graph.name, count, slots, arena, _peak_live_bytes(storages, count),
                      sum(b.size for b in slots), state_writes)


def peak_live_bytes(graph: Graph, facts: KernelFacts | None = None) -> int:
    """The ``lower_bound_bytes`` that ``plan_memory`` gives ``graph``, without placing the buffers
    (``facts``: see ``kernel_buffers``)."""
    buffers = kernel_buffers(graph, facts)
    last = last_uses(graph, buffers)
    donations = _donations(graph, buffers, _state_readers(graph, buffers))
    storage_of, _ = _storages(graph, buffers, last, donations)
    return _peak_live_bytes(_distinct(storage_of.values()), len(buffers.kernels))


def _distinct(storages: Iterable[_Storage]) -> list[_Storage]:
    """Each storage once (in-place chains share one), in first-seen order."""
    return list({id(storage): storage for storage in storages}.values())


# -- checking -------------------------------------------------------------------------

def check_plan(plan: MemoryPlan) -> None:
    """Raise MemoryPlanError unless the plan is safe.

    Every arena buffer is aligned and inside the arena, and no two live at the same time
    share a byte, except a buffer written in place over an operand that dies at the kernel
    writing it.  Every buffer computed into a state's storage is that state's write-back
    value, and its kernel is the last to read the old state value, reading it (if at all)
    only element for element.
    """
    names = {b.name: b for b in plan.buffers}
    for buffer in plan.buffers:
        _check_lifetime(plan, buffer)
        if buffer.in_arena:
            _check_slot(plan, buffer, names)
        else:
            _check_donation(plan, buffer)
    arena = [b for b in plan.buffers if b.in_arena]
    for i, first in enumerate(arena):
        for second in arena[i + 1:]:
            if first.lives_with(second) and first.shares_bytes_with(second) and not _in_place_pair(first, second):
                raise MemoryPlanError(
                    f"{plan.graph_name}: %{first.name} (bytes {first.offset}..{first.end}, kernels "
                    f"{first.first_use}..{first.last_use}) and %{second.name} (bytes {second.offset}..{second.end}, "
                    f"kernels {second.first_use}..{second.last_use}) are live together in the same bytes")
    if plan.arena_bytes < plan.lower_bound_bytes:
        raise MemoryPlanError(f"{plan.graph_name}: arena of {plan.arena_bytes} bytes is below the "
                              f"lower bound of {plan.lower_bound_bytes}")


def _check_lifetime(plan: MemoryPlan, buffer: BufferSlot) -> None:
    if not 0 <= buffer.first_use <= buffer.last_use < plan.kernel_count:
        raise MemoryPlanError(f"{plan.graph_name}: buffer %{buffer.name} lives from kernel {buffer.first_use} "
                              f"to {buffer.last_use}, outside the {plan.kernel_count} kernels")


def _check_slot(plan: MemoryPlan, buffer: BufferSlot, names: dict[str, BufferSlot]) -> None:
    where = f"{plan.graph_name}: buffer %{buffer.name}"
    if buffer.offset is None:
        raise MemoryPlanError(f"{where} has no offset but is not computed into a state's storage")
    if buffer.offset % ALIGNMENT:
        raise MemoryPlanError(f"{where} starts at {buffer.offset}, not a multiple of {ALIGNMENT}")
    if buffer.offset < 0 or buffer.end > plan.arena_bytes:
        raise MemoryPlanError(f"{where} (bytes {buffer.offset}..{buffer.end}) is outside the arena "
                              f"of {plan.arena_bytes} bytes")
    if buffer.in_place_of is not None:
        if buffer.in_place_of not in names:
            raise MemoryPlanError(f"{where} is in place of %{buffer.in_place_of}, which has no slot")
        if not _in_place_pair(names[buffer.in_place_of], buffer):
            raise MemoryPlanError(f"{where} is in place of %{buffer.in_place_of} but does not start where "
                                  f"and when that buffer ends")


def _check_donation(plan: MemoryPlan, buffer: BufferSlot) -> None:
    """A write-back value may overwrite its state's storage only once nothing else needs the old value."""
    where = (f"{plan.graph_name}: buffer %{buffer.name}, computed into %{buffer.into_state}'s storage "
             f"by kernel {buffer.first_use},")
    write = plan.state_writes.get(buffer.into_state)
    if write is None or write.value != buffer.name:
        raise MemoryPlanError(f"{where} is not the value written back into %{buffer.into_state}")
    if write.size != buffer.size:
        raise MemoryPlanError(f"{where} has {buffer.size} bytes, but the state has {write.size}")
    late = [reader for reader in write.readers if reader > buffer.first_use]
    if late:
        reader = "the graph's return" if late[0] == plan.kernel_count else f"kernel {late[0]}"
        raise MemoryPlanError(f"{where} overwrites the old value that {reader} reads later")
    if buffer.first_use in write.readers and buffer.first_use not in write.in_step_readers:
        raise MemoryPlanError(f"{where} reads the old value other than element for element, "
                              f"so it could overwrite elements it has yet to read")


def _in_place_pair(first: BufferSlot, second: BufferSlot) -> bool:
    """Whether one buffer is written in place over the other, which dies at the writing kernel."""
    def over(old: BufferSlot, new: BufferSlot) -> bool:
        return (new.in_place_of == old.name and new.offset == old.offset and new.size == old.size
                and new.first_use == old.last_use)
    return over(first, second) or over(second, first)


# -- the picture ------------------------------------------------------------------------

# Buffers at least this share of the arena's area (bytes x kernels) are labelled with their names.
_LABEL_SHARE = 0.02


def _draw(plan: MemoryPlan, path: Path) -> Path:
    # Figure without pyplot: no display, no global backend switch for the caller.
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    scale, unit = _byte_unit(plan.arena_bytes)
    figure = Figure(figsize=(12, 6), layout="constrained")
    axes = figure.add_subplot()
    area = max(1, plan.arena_bytes * max(plan.kernel_count, 1))
    for i, buffer in enumerate(plan.buffers):
        if not buffer.in_arena:
            continue
        width = buffer.last_use - buffer.first_use + 1
        colour = _colour(i)
        axes.add_patch(Rectangle((buffer.first_use, buffer.offset / scale), width, buffer.size / scale,
                                 facecolor=colour, edgecolor="black", linewidth=0.3,
                                 hatch="//" if buffer.in_place_of else None))
        if buffer.size * width >= _LABEL_SHARE * area:
            axes.text(buffer.first_use + width / 2, (buffer.offset + buffer.size / 2) / scale, f"%{buffer.name}",
                      ha="center", va="center", fontsize=7, clip_on=True)
    axes.axhline(plan.arena_bytes / scale, color="black", linewidth=1, label="arena")
    axes.axhline(plan.lower_bound_bytes / scale, color="red", linestyle="--", linewidth=1,
                 label="lower bound (peak live bytes)")
    if plan.donated:
        # An empty line: the legend's note on what the chart leaves out.
        axes.plot([], [], " ", label=f"not drawn, computed into their state's storage: {len(plan.donated)} write-backs")
    axes.set_xlim(0, max(plan.kernel_count, 1))
    axes.set_ylim(0, max(plan.arena_bytes, 1) / scale * 1.05)
    axes.set_xlabel("kernel")
    axes.set_ylabel(f"offset ({unit})")
    axes.set_title(plan.summary() + "\nhatched: written in place", fontsize=9)
    figure.legend(loc="outside lower center", ncols=2, fontsize=8)
    figure.savefig(path)
    return path


def _byte_unit(count: int) -> tuple[int, str]:
    for scale, unit in ((2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if count >= scale:
            return scale, unit
    return 1, "B"


def _colour(index: int) -> str:
    # Neighbouring buffers in kernel order get different colours from a 10-colour cycle.
    return f"C{index % 10}"
