"""Fusion: group primitives into kernels and replace each group with one ``fused`` node.

Every op falls into one class (``classify``): elementwise (broadcasting
included), movement (ops that only re-index: reshape, permute, expand, slice,
pad, concat), reduction, contraction (conv2d, conv_transpose2d,
conv2d_weight_grad, matmul), window (pooling and its gradients), constant
(``full``) or opaque (index and random ops, stored constants, fused nodes).
A group holds at most one *anchor* (a reduction, contraction or window op)
and becomes one kernel:

- elementwise and movement ops fuse into chains and trees;
- elementwise epilogues fuse into an anchor: bias add, BatchNorm's affine,
  relu or leaky relu (``where``), a residual add; a contraction may also
  store through a permute (a weight gradient written transposed, straight
  into the optimizer's update);
- elementwise and movement prologues fuse into a reduction (softmax and
  cross-entropy pieces, BatchNorm's mean and variance); never into a
  contraction or window op, whose operands are read many times each — except
  that a matmul reads an operand through a permute (as BLAS reads a
  transposed matrix: no work per read), and nothing joins through that view.

**Growing groups.**  Each group starts from one value used outside it, its
*root*.  Groups grow backwards from their roots: walking the graph from its end, a node joins the group of its users
when every user is in that group and the group can take it.  A node whose
users sit in several groups joins all of them, computed again in each, only
when it is cheap (elementwise, movement or ``full``) and every one of them
can take it; expensive work (anchors, opaque ops) is never duplicated, so
such a node stays the root of its own group and is stored.  One exception:
an elementwise op that is the only reader of an anchor is stored rather than
duplicated, so that it can be the anchor's epilogue.  A ``full`` is copied
into every group that reads it (and also kept as a node if some reader
cannot take it).

**Never twice per element.**  Inside a group, an elementwise op whose value a
broadcast spreads over a larger shape would be recomputed for every copy, so
it does not join; an anchor joins only when its output reaches the root
unbroadcast, through elementwise ops (and reshapes) of its own size.  Rank-0
elementwise work is the exception: it does not depend on the loop index, so a
backend computes it once per kernel, before the loop (LLVM's loop-invariant
code motion does so by itself), and it joins every group that reads it, as a
constant does.  An Adam update's bias corrections are such scalars.

**Several outputs per group.**  Once found, groups merge into kernels with
several outputs (``graphc.passes.kernel_merge``): a producer into its
consumer, the parameter updates of one shape into one kernel, pooling's
values and argmax into one pass over the windows, an elementwise consumer
into an anchor's epilogue.  The fused node then has a tuple type and
``tuple_get`` nodes, named after the values, name its outputs.

Because every member of a group reaches the group's root inside the group,
no group can feed itself through another: the group graph is acyclic, and
the merges keep it so.  The pass still orders the kernels with networkx's
topological sort, which fails loudly if that ever stopped being true.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

import networkx as nx

from ..errors import GraphcError
from ..ir.graph import Graph, Node, unused_name
from ..ops.fused import is_kernel
from ..ops.registry import get_op, infer_node, operand_views_read
from .manager import register_pass

DEFAULT_MAX_GROUP_SIZE = 64
# Merging independent kernels (every parameter update of one shape) stops at this many outputs.
DEFAULT_MAX_KERNEL_OUTPUTS = 64

# Op classes; the first five are also the registry families they come from.
ELEMENTWISE, MOVEMENT, REDUCTION, CONTRACTION, WINDOW = "elementwise", "movement", "reduction", "contraction", "window"
CONSTANT, OPAQUE = "constant", "opaque"

ANCHORS = (REDUCTION, CONTRACTION, WINDOW)
# Cheap enough to compute again in every group that reads them.
DUPLICABLE = (ELEMENTWISE, MOVEMENT, CONSTANT)
# Ops that take no prologue: contractions and windows read each operand element many
# times, and an opaque op is a kernel of its own.
NO_PROLOGUE = (CONTRACTION, WINDOW, OPAQUE)


def classify(node: Node) -> str:
    """The fusion class of ``node``'s op (see the module docstring)."""
    if node.op == "full":
        return CONSTANT
    family = get_op(node.op).family
    return family if family in (ELEMENTWISE, MOVEMENT, *ANCHORS) else OPAQUE


def count_kernels(graph: Graph) -> int:
    """The number of kernels running ``graph`` takes (see ``is_kernel``)."""
    return sum(1 for node in graph.nodes if is_kernel(node))


# -- grouping -------------------------------------------------------------------------

@dataclass(eq=False)
class FusionGroup:
    """Nodes that become one kernel, storing the values in ``outputs``.

    A group starts from one output, its root; merging groups
    (``kernel_merge``) gives it more.  ``recompute[m]`` says how many times
    the kernel computes each element of member ``m`` (above 1 only for
    movement ops and constants, which are free).  ``operand_views`` are the
    permutes its matmuls read through (see ``_Grouper.is_operand_view``);
    nothing joins the group through them.
    """
    root: Node
    anchor: Node | None = None
    recompute: dict[Node, int] = field(default_factory=dict)
    operand_views: set[Node] = field(default_factory=set)
    outputs: list[Node] = field(default_factory=list)

    def __post_init__(self):
        self.recompute[self.root] = 1
        self.outputs = [self.root]
        if classify(self.root) in ANCHORS:
            self.anchor = self.root

    @property
    def members(self) -> list[Node]:
        return list(self.recompute)

    def __contains__(self, node: Node) -> bool:
        return node in self.recompute

    def __len__(self) -> int:
        return len(self.recompute)

    @property
    def kind(self) -> str:
        """How a backend emits the group: after its anchor, or as a loop over the output."""
        if self.anchor is not None:
            return classify(self.anchor)
        if all(classify(m) in (MOVEMENT, CONSTANT) for m in self.recompute):
            return MOVEMENT
        return ELEMENTWISE


class _Grouper:
    """Builds fusion groups walking the graph from its end (see the module docstring)."""

    def __init__(self, graph: Graph, max_group_size: int):
        self.max_group_size = max_group_size
        self.users = graph.users()
        self.escaping = set(graph.outputs) | {value for _, value in graph.writes}
        self.groups_of: dict[Node, list[FusionGroup]] = {}
        self.groups: list[FusionGroup] = []

    def run(self, nodes: list[Node]) -> list[FusionGroup]:
        for node in reversed(nodes):
            self.place(node)
        return self.groups

    def place(self, node: Node) -> None:
        targets = self.user_groups(node)
        joinable = [g for g in targets if self.can_join(node, g)]
        if classify(node) == CONSTANT:
            self.join(node, joinable)
            if len(joinable) < len(targets) or node in self.escaping or not targets:
                self.start_group(node)
            return
        if self.goes_with_its_readers(node, targets, joinable):
            self.join(node, joinable)
        else:
            self.start_group(node)

    def goes_with_its_readers(self, node: Node, targets: list[FusionGroup], joinable: list[FusionGroup]) -> bool:
        """Whether ``node`` joins every group that reads it rather than being stored by a group of its own."""
        if not targets or node in self.escaping or len(joinable) < len(targets):
            return False
        return len(targets) == 1 or (classify(node) in DUPLICABLE and not self.is_epilogue_of_anchor(node))

    def is_epilogue_of_anchor(self, node: Node) -> bool:
        """Whether ``node`` could be the epilogue of an anchor that nothing else reads.

        Such a node is better stored once, by the anchor's kernel, than computed
        again in each of its readers' kernels with the anchor's output stored instead.
        So is a reshape or permute of a contraction's output that nothing else reads (a
        convolution's weight gradient, transposed into the weight's shape, read by an
        optimizer's two update kernels): stored by the contraction, in place, its readers read
        it in order, where each had read the product through the transpose lane by lane.
        """
        if classify(node) == MOVEMENT:
            moved = node
            while moved.op in ("reshape", "permute"):
                source = moved.inputs[0]
                if source.is_input or self.users[source] != [moved] or source in self.escaping:
                    return False
                if classify(source) == CONTRACTION:
                    return source.type.numel == node.type.numel
                moved = source
            return False
        return classify(node) == ELEMENTWISE and any(
            not operand.is_input and classify(operand) in ANCHORS and operand.shape == node.shape
            and self.users[operand] == [node] and operand not in self.escaping for operand in node.inputs)

    def user_groups(self, node: Node) -> list[FusionGroup]:
        """Every group computing some user of ``node``; each needs ``node``, computed or read."""
        groups: dict[int, FusionGroup] = {}
        for user in self.users[node]:
            for group in self.groups_of[user]:
                groups.setdefault(id(group), group)
        return list(groups.values())

    def start_group(self, node: Node) -> None:
        group = FusionGroup(node)
        self.groups.append(group)
        self.groups_of.setdefault(node, []).append(group)

    def join(self, node: Node, groups: list[FusionGroup]) -> None:
        for group in groups:
            if self.is_operand_view(node, [user for user in self.users[node] if user in group], group):
                group.operand_views.add(node)
            group.recompute[node] = self.recompute_in(node, group)
            self.groups_of.setdefault(node, []).append(group)
            if classify(node) in ANCHORS:
                group.anchor = node

    def recompute_in(self, node: Node, group: FusionGroup) -> int:
        """How many times ``group`` would compute each element of ``node`` (loop-invariant work: once)."""
        if is_loop_invariant(node):
            return 1
        return max(group.recompute[user] * _spread(node, user) for user in self.users[node] if user in group)

    def can_join(self, node: Node, group: FusionGroup) -> bool:
        cls = classify(node)
        if cls == OPAQUE or len(group) >= self.max_group_size:
            return False
        readers = [user for user in self.users[node] if user in group]
        if any(classify(user) in NO_PROLOGUE or user in group.operand_views for user in readers):
            return self.is_operand_view(node, readers, group)
        if cls in (MOVEMENT, CONSTANT):
            return True
        if self.recompute_in(node, group) != 1:
            return False
        return cls == ELEMENTWISE or (group.anchor is None and self.is_epilogue_head(node, group))

    @staticmethod
    def is_operand_view(node: Node, readers: list[Node], group: FusionGroup) -> bool:
        """Whether ``node`` is a permute read only by matmuls of the group (directly, or through
        other views of it): the matmul then reads the permute's input with the axes swapped (as
        BLAS reads a transposed operand), with no work per read.  Nothing joins through it, so
        no work is repeated per read either.  A reshape read by a permute that the group stores
        (a product's output moved into place) is no operand view: it is the product's epilogue."""
        return (get_op(node.op).operand_view and bool(readers)
                and all((classify(user) == CONTRACTION or user in group.operand_views)
                        and all(position in operand_views_read(user)
                                for position, operand in enumerate(user.inputs) if operand is node)
                        for user in readers))

    def is_epilogue_head(self, anchor: Node, group: FusionGroup) -> bool:
        """Whether everything in ``group`` that ``anchor`` feeds maps the anchor's elements one to
        one onto as many output elements: elementwise ops and reshapes keep their order, and a
        contraction may also store through a permute (a matmul writing its result transposed, as
        a weight gradient feeding the optimizer's update does).  So the epilogue runs once per
        element of the anchor's output, as the anchor writes it."""
        pending, seen = [anchor], set()
        while pending:
            for user in self.users[pending.pop()]:
                if user in group and user not in seen:
                    one_to_one = keeps_element_order(user) or (
                        get_op(user.op).operand_view and classify(anchor) == CONTRACTION)
                    if not one_to_one or user.type.numel != anchor.type.numel:
                        return False
                    seen.add(user)
                    pending.append(user)
        return True


def is_loop_invariant(node: Node) -> bool:
    """Rank-0 elementwise work: the same in every iteration of a kernel's loop, so computed
    once per kernel, before the loop, however many kernels and elements read it."""
    return classify(node) == ELEMENTWISE and node.shape == ()


def keeps_element_order(node: Node) -> bool:
    """Whether element i of ``node``'s output comes from element i of its full-size operands."""
    return classify(node) == ELEMENTWISE or get_op(node.op).keeps_element_order


def _spread(producer: Node, user: Node) -> int:
    """How many times ``user`` reads each element of ``producer`` (broadcasting reads some repeatedly)."""
    if classify(user) == ELEMENTWISE or get_op(user.op).broadcasts:
        return max(1, user.type.numel // max(1, producer.type.numel))
    return 1


def find_groups(graph: Graph, max_group_size: int = DEFAULT_MAX_GROUP_SIZE) -> list[FusionGroup]:
    """The fusion groups of ``graph``: each node is in one group, or in several if cheap."""
    if max_group_size < 1:
        raise GraphcError(f"fusion: max_group_size must be at least 1, got {max_group_size}")
    return _Grouper(graph, max_group_size).run(graph.nodes)


# -- building the fused graph -----------------------------------------------------------

def fuse(graph: Graph, max_group_size: int = DEFAULT_MAX_GROUP_SIZE,
         max_kernel_outputs: int = DEFAULT_MAX_KERNEL_OUTPUTS) -> Graph:
    """``graph`` with each fusion group of two or more nodes replaced by one ``fused`` node.

    A kernel with one output takes its value's name, so outputs and dumps keep
    their names; a kernel with several is named ``<first output>.kernel`` and
    followed by one ``tuple_get`` per output, each named after its value.
    """
    from .kernel_merge import merge_groups      # here: kernel_merge builds on this module's groups
    groups = merge_groups(graph, find_groups(graph, max_group_size), max_group_size, max_kernel_outputs)
    position = {node: i for i, node in enumerate(graph.nodes)}
    values: dict[Node, Node] = {node: node for node in graph.inputs}
    taken = {node.name for node in (*graph.inputs, *graph.nodes)}
    nodes: list[Node] = []
    for group in _kernel_order(groups, position):
        members = sorted(group.members, key=position.__getitem__)
        external = _external_inputs(members, group)
        if len(members) == 1 or not external:
            # A lone node stays itself; a group of constants alone has nothing to take as operands.
            nodes += _copy_unfused(members, values)
        else:
            nodes += _fused_nodes(group, members, external, values, taken)
    return Graph(graph.name, graph.inputs, nodes, [values[n] for n in graph.outputs],
                 [(target, values[value]) for target, value in graph.writes])


def _kernel_order(groups: list[FusionGroup], position: dict[Node, int]) -> list[FusionGroup]:
    """The groups in an order that computes each before its readers, as close to the original as possible."""
    producer = {output: index for index, group in enumerate(groups) for output in group.outputs}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(groups)))
    for index, group in enumerate(groups):
        for member in group.members:
            for operand in member.inputs:
                if operand not in group and operand in producer:
                    dag.add_edge(producer[operand], index)
    try:
        order = nx.lexicographical_topological_sort(
            dag, key=lambda i: min(position[output] for output in groups[i].outputs))
        return [groups[i] for i in order]
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(dag)
        names = ", ".join(f"%{groups[i].root.name}" for i, _ in cycle)
        raise GraphcError(f"fusion made a cycle between the groups of {names}") from None


def _external_inputs(members: list[Node], group: FusionGroup) -> list[Node]:
    """The values the group reads from outside, in order of first use."""
    external: dict[Node, None] = {}
    for member in members:
        for operand in member.inputs:
            if operand not in group:
                external.setdefault(operand)
    return list(external)


def _copy_unfused(members: list[Node], values: dict[Node, Node]) -> list[Node]:
    """Copies of ``members`` reading the new graph's values; a node already copied is not copied again."""
    copies = []
    for member in members:
        if member not in values:
            values[member] = _copy(member, [values[i] for i in member.inputs])
            copies.append(values[member])
    return copies


def _copy(node: Node, inputs: list[Node]) -> Node:
    return Node(node.name, node.op, inputs, node.attrs, node.type, loc=node.loc)


def _fused_nodes(group: FusionGroup, members: list[Node], external: list[Node],
                 values: dict[Node, Node], taken: set[str]) -> list[Node]:
    """One ``fused`` node whose body computes ``group``'s outputs from its external inputs,
    followed by a ``tuple_get`` per output if it has several; ``values`` learns the new outputs.

    The body's inputs and nodes keep the names they had in the graph, so the
    body reads as the slice of the graph it replaces.
    """
    first = group.outputs[0]
    body_values = {value: Node(value.name, "input", (), {}, value.type, tag="data") for value in external}
    for member in members:
        body_values[member] = _copy(member, [body_values[i] for i in member.inputs])
    body = Graph(f"fused_{first.name}", [body_values[v] for v in external],
                 [body_values[m] for m in members], [body_values[output] for output in group.outputs])
    operands = [values[v] for v in external]
    attrs, out_type = infer_node("fused", [v.type for v in operands], {"kind": group.kind, "body": body})
    if len(group.outputs) == 1:
        values[first] = Node(first.name, "fused", operands, attrs, out_type, loc=first.loc)
        return [values[first]]
    kernel_name = unused_name(f"{first.name}.kernel", taken)
    taken.add(kernel_name)
    kernel = Node(kernel_name, "fused", operands, attrs, out_type, loc=first.loc)
    nodes = [kernel]
    for index, output in enumerate(group.outputs):
        get_attrs, get_type = infer_node("tuple_get", [out_type], {"index": index})
        values[output] = Node(output.name, "tuple_get", [kernel], get_attrs, get_type, loc=output.loc)
        nodes.append(values[output])
    return nodes



# -- reporting ------------------------------------------------------------------------

@dataclass(frozen=True)
class FusionReport:
    """What fusion did: primitive nodes before, kernels after, fused nodes per kind."""
    nodes_before: int
    kernels_after: int
    fused_kinds: dict[str, int]

    def __str__(self) -> str:
        ratio = self.kernels_after / self.nodes_before if self.nodes_before else 0.0
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.fused_kinds.items()))
        return (f"fusion: {self.nodes_before} nodes -> {self.kernels_after} kernels ({ratio:.0%})"
                + (f"; fused: {kinds}" if kinds else ""))


def fusion_report(before: Graph, after: Graph) -> FusionReport:
    """Compare the graph given to fusion with the graph it made."""
    kinds = Counter(node.attrs["kind"] for node in after.nodes if node.op == "fused")
    return FusionReport(len(before.nodes), count_kernels(after), dict(kinds))


# -- the pass ------------------------------------------------------------------------

def run(graph: Graph, options: Mapping[str, object]) -> Graph:
    """Group primitives into kernels, one ``fused`` node per group (options: max_group_size,
    max_kernel_outputs)."""
    unknown = set(options) - {"max_group_size", "max_kernel_outputs"}
    if unknown:
        raise GraphcError(f"fusion: unknown option(s) {', '.join(sorted(unknown))}; "
                          f"it takes max_group_size and max_kernel_outputs")
    max_outputs = int(options.get("max_kernel_outputs", DEFAULT_MAX_KERNEL_OUTPUTS))
    if max_outputs < 1:
        raise GraphcError(f"fusion: max_kernel_outputs must be at least 1, got {max_outputs}")
    return fuse(graph, int(options.get("max_group_size", DEFAULT_MAX_GROUP_SIZE)), max_outputs)


register_pass("fusion", run)
