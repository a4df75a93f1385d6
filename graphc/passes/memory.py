"""Memory planning: every intermediate value gets an offset in one arena.

The plan works over the graph's final node order, counting kernels only
(``fusion.is_kernel``: scalar constants are folded into their readers and
take no memory).  Each kernel's output is one buffer, live from the kernel
that writes it to the last kernel that reads it; graph outputs and
write-back values live to the end of the step.  Graph inputs (data,
parameters, buffers, optimizer state) are the caller's and lie outside the
arena.

In place: an elementwise kernel (or a reshape, or a fused elementwise kernel
whose body keeps the order of elements from that operand to its result)
reads each element of an operand only to write the same element of its
output, so when an operand of the same size dies at that kernel, the output
takes over its bytes.  A max-pool gradient whose windows tile its input
exactly (stride = kernel, no padding or dilation), with only elementwise work
around it, reads each window of its input only to write the same window of
its output; it may take over the input's bytes too, which binds the code
generators to compute such a kernel window by window, reading a window
before writing it.

Donation: a write-back value whose kernel is the last to touch the old state
value (every other reader of it runs earlier) and reads it, if at all, only
element for element is computed straight into the state input's own storage,
as real compilers donate a parameter's buffer to its update.  Such values take
no arena bytes; ``StateWrite`` records how the kernels read each written state,
so ``check_plan`` can prove every donation legal.

Placement is greedy by size: buffers (an in-place chain counts as one) are
placed largest first, each at the offset, 64-byte aligned, of the tightest
gap left by the already placed buffers whose lifetimes overlap its own.
``lower_bound_bytes``, the most arena bytes ever live at once, is what no plan
can beat; ``naive_bytes``, every kernel output side by side (donated ones
included), is what no plan should need.  ``check_plan`` proves a plan safe by
comparing every pair of arena buffers and every donation with the state's reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterable

from ..errors import GraphcError
from ..ir.graph import Graph, Node
from .fusion import ELEMENTWISE, WINDOW, is_kernel, keeps_element_order
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


def last_uses(graph: Graph, kernels: list[Node]) -> dict[Node, int]:
    """Each kernel's last reader in kernel order (its own index when nothing reads it);
    outputs and write-back values live to the end.  Graph inputs and scalar constants
    take no arena bytes, so they have no entry."""
    index = {node: i for i, node in enumerate(kernels)}
    last = dict(index)
    for node in kernels:
        for operand in node.inputs:
            if operand in index:
                last[operand] = max(last[operand], index[node])
    for node in (*graph.outputs, *(value for _, value in graph.writes)):
        if node in index:
            last[node] = len(kernels) - 1
    return last


def _reads_in_step(kernel: Node, operand: Node) -> bool:
    """Whether ``kernel`` reads element i of ``operand`` only to write element i of its output,
    so the output may overwrite the operand as it goes."""
    if operand.type.nbytes != kernel.type.nbytes or operand.dtype.itemsize != kernel.dtype.itemsize:
        return False
    if kernel.op == "fused":
        body = kernel.attrs["body"]
        body_input = body.inputs[kernel.inputs.index(operand)]
        return kernel.attrs["kind"] == ELEMENTWISE and _keeps_order_after(body, body_input)
    # The same size, so not broadcast: read once, at the element being written.
    return keeps_element_order(kernel)


def _keeps_order_after(body: Graph, start: Node) -> bool:
    """Whether every body node that ``start`` feeds keeps the order of elements over the output's size."""
    reached = {start}
    size = body.outputs[0].type.numel
    for node in body.nodes:
        if any(i in reached for i in node.inputs):
            if not keeps_element_order(node) or node.type.numel != size:
                return False
            reached.add(node)
    return True


def _tiles_its_input(node: Node) -> bool:
    """A max-pool gradient whose windows cover its input exactly once (stride = kernel, no
    padding, no dilation, sizes divisible): output window w depends on input window w only."""
    if node.op != "max_pool2d_grad":
        return False
    attrs, (height, width) = node.attrs, node.inputs[0].shape[2:]
    kh, kw = attrs["kernel_size"]
    return (tuple(attrs["stride"]) == (kh, kw) and tuple(attrs["padding"]) == (0, 0)
            and tuple(attrs["dilation"]) == (1, 1) and height % kh == 0 and width % kw == 0)


def _reads_by_window(kernel: Node, operand: Node) -> bool:
    """Whether ``kernel`` reads each pooling window of ``operand`` only to write the same window
    of its output: every use of ``operand`` is elementwise at full size or the ``input`` of a
    max-pool gradient that tiles it (see ``_tiles_its_input``)."""
    if operand.type.nbytes != kernel.type.nbytes or operand.dtype.itemsize != kernel.dtype.itemsize:
        return False
    if kernel.op != "fused":
        return _tiles_its_input(kernel) and kernel.inputs[0] is operand
    if kernel.attrs["kind"] != WINDOW:
        return False
    body = kernel.attrs["body"]
    start = body.inputs[kernel.inputs.index(operand)]
    size = body.outputs[0].type.numel
    reached = {start}
    for node in body.nodes:
        uses = [i for i, value in enumerate(node.inputs) if value in reached]
        if not uses:
            continue
        windowed = _tiles_its_input(node) and uses == [0]
        if node.type.numel != size or not (windowed or keeps_element_order(node)):
            return False
        reached.add(node)
    return True


def _in_place_partner(kernel: Node, index: dict[Node, int], last: dict[Node, int],
                      escaping: set[Node]) -> Node | None:
    """The first operand whose bytes ``kernel`` may write its output into, if any."""
    for operand in kernel.inputs:
        dies_here = operand in index and last[operand] == index[kernel] and operand not in escaping
        if dies_here and (_reads_in_step(kernel, operand) or _reads_by_window(kernel, operand)):
            return operand
    return None


def _storages(graph: Graph, kernels: list[Node], last: dict[Node, int],
              donated: Collection[Node]) -> tuple[dict[Node, _Storage], dict[Node, Node]]:
    """Each arena kernel's storage (donated write-back values have none), and for in-place
    kernels the operand they overwrite."""
    index = {node: i for i, node in enumerate(kernels)}
    escaping = set(graph.outputs) | {value for _, value in graph.writes}
    storage_of: dict[Node, _Storage] = {}
    partner_of: dict[Node, Node] = {}
    for node in kernels:
        if node in donated:
            continue
        partner = _in_place_partner(node, index, last, escaping)
        if partner is None:
            storage_of[node] = _Storage(node.type.nbytes, index[node], last[node])
            continue
        partner_of[node] = partner
        storage_of[node] = storage_of[partner]
        storage_of[node].last_use = last[node]
    return storage_of, partner_of


# -- donating state storage -------------------------------------------------------------

def donation_candidates(graph: Graph) -> dict[Node, Node]:
    """The write-back values (to their state inputs) that may be computed straight into the
    state's storage, provided every other reader of the old state value runs before them.

    The value's kernel must read the old value, if at all, only element for element
    (``_reads_in_step``), so each element is read before it is overwritten.  Neither the value
    nor the old state may be returned: a returned array must not alias state.  A value
    written into two states takes the storage of the first.
    """
    returned = set(graph.outputs)
    candidates: dict[Node, Node] = {}
    for target, value in graph.writes:
        if value.is_input or not is_kernel(value) or value in candidates:
            continue
        if value in returned or target in returned:
            continue
        if target in value.inputs and not _reads_in_step(value, target):
            continue
        candidates[value] = target
    return candidates


def _state_writes(graph: Graph, kernels: list[Node]) -> dict[str, StateWrite]:
    """How the kernels read each state that the graph writes back; returning the old value
    counts as a read after the last kernel."""
    index = {node: i for i, node in enumerate(kernels)}
    users = graph.users()
    returned = set(graph.outputs)
    writes = {}
    for target, value in graph.writes:
        readers = [index[user] for user in users[target]]
        if target in returned:
            readers.append(len(kernels))
        in_step = [index[user] for user in users[target] if _reads_in_step(user, target)]
        writes[target.name] = StateWrite(target.name, target.type.nbytes, value.name,
                                         tuple(sorted(set(readers))), tuple(sorted(set(in_step))))
    return writes


def _donations(graph: Graph, kernels: list[Node], state_writes: dict[str, StateWrite]) -> dict[Node, Node]:
    """The candidates (``donation_candidates``) whose kernel comes after every other reader
    of the old state value, in the graph's node order: value -> state."""
    index = {node: i for i, node in enumerate(kernels)}
    return {value: target for value, target in donation_candidates(graph).items()
            if all(reader <= index[value] for reader in state_writes[target.name].readers)}


# -- placement ------------------------------------------------------------------------

def _aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


def _place(storages: list[_Storage]) -> int:
    """Give every storage an offset, largest first into the tightest gap; returns the arena size."""
    placed: list[_Storage] = []
    arena = 0
    for storage in sorted(storages, key=lambda s: (-s.size, s.first_use)):
        neighbours = sorted((p for p in placed if p.lives_with(storage)), key=lambda p: p.offset)
        storage.offset = _best_gap(neighbours, _aligned(storage.size))
        placed.append(storage)
        arena = max(arena, storage.offset + _aligned(storage.size))
    return arena


def _best_gap(neighbours: list[_Storage], size: int) -> int:
    """The start of the smallest free range of at least ``size`` bytes below or between
    ``neighbours`` (sorted by offset); above them all if none fits."""
    best_offset, best_waste = None, None
    top = 0
    for other in neighbours:
        gap = other.offset - top
        if gap >= size and (best_waste is None or gap - size < best_waste):
            best_offset, best_waste = top, gap - size
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
    kernels = [node for node in graph.nodes if is_kernel(node)]
    last = last_uses(graph, kernels)
    state_writes = _state_writes(graph, kernels)
    donations = _donations(graph, kernels, state_writes)
    storage_of, partner_of = _storages(graph, kernels, last, donations)
    storages = _distinct(storage_of.values())
    arena = _place(storages)
    buffers = [BufferSlot(node.name, node.type.nbytes, storage_of[node].offset if node in storage_of else None,
                          i, last[node], partner_of[node].name if node in partner_of else None,
                          donations[node].name if node in donations else None)
               for i, node in enumerate(kernels)]
    return MemoryPlan(graph.name, len(kernels), buffers, arena, _peak_live_bytes(storages, len(kernels)),
                      sum(b.size for b in buffers), state_writes)


def peak_live_bytes(graph: Graph) -> int:
    """The ``lower_bound_bytes`` that ``plan_memory`` gives ``graph``, without placing the buffers."""
    kernels = [node for node in graph.nodes if is_kernel(node)]
    last = last_uses(graph, kernels)
    donations = _donations(graph, kernels, _state_writes(graph, kernels))
    storage_of, _ = _storages(graph, kernels, last, donations)
    return _peak_live_bytes(_distinct(storage_of.values()), len(kernels))


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
