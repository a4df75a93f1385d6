"""Multi-output kernels: merging fusion groups once they are found.

The grouper (``fusion.find_groups``) gives every group one root, the value it
stores.  A value that several kernels read, or that the step writes back, is
the root of a group of its own, so a training step still launches a kernel
per stored value.  Four merges then let one kernel store several values,
each only where the merged kernel is still one loop nest:

1. **Producer into consumer.**  An elementwise kernel whose output another
   elementwise kernel of the same shape reads element for element becomes
   part of that reader, which stores both values.  Adam's new moments and
   its new parameter become one kernel with three outputs.
2. **Parameter updates of one shape.**  Elementwise kernels that only
   compute write-back values (an optimizer's updates) and have the same
   output shape become one kernel: the update of every parameter of one
   shape is one launch, as in PyTorch's multi-tensor ("foreach") optimizers.
3. **Siblings over one input.**  Pooling kernels that read the same input
   with the same window (max pooling's values and its argmax), and
   reductions with the same loop nest that read a common input, become one
   pass over that input.
4. **Epilogue outputs.**  An elementwise kernel that reads the output of a
   convolution, matmul, pooling or reduction kernel of the same shape element
   for element becomes that kernel's epilogue, stored beside its value (SGD's
   new momentum and new parameter in the weight gradient's epilogue).

**One loop nest.**  All outputs of a kernel share one shape, and a value
merged into its reader is read only element for element (through ops that
keep element order, at the full size), so iteration i of the merged loop
computes element i of the producer before the reader uses it.

**No cycles.**  Two groups merge only when no path leads from one to the
other through a third group; otherwise the merged kernel would feed a kernel
it depends on.  ``_GroupGraph`` keeps the groups' read edges up to date as
they merge.

**Sizes.**  Merges 1, 3 and 4 respect fusion's ``max_group_size``; merge 2
joins independent computations, which add to a kernel's body side by side,
and stops at ``max_kernel_outputs`` outputs instead.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node, attrs_key
from .fusion import ELEMENTWISE, OPAQUE, REDUCTION, WINDOW, FusionGroup, classify, keeps_element_order


def merge_groups(graph: Graph, groups: list[FusionGroup], max_group_size: int,
                 max_kernel_outputs: int) -> list[FusionGroup]:
    """``groups`` after the four merges of the module docstring, in their original order."""
    # An opaque op (an index or random op, a stored constant) is a kernel of its own.
    fusable = [group for group in groups if all(classify(m) != OPAQUE for m in group.members)]
    merger = _GroupGraph(graph, groups, fusable)
    merger.merge_producers_into_consumers(max_group_size, max_kernel_outputs)
    merger.merge_updates(max_kernel_outputs)
    merger.merge_siblings(max_group_size, max_kernel_outputs)
    merger.merge_epilogues(max_group_size, max_kernel_outputs)
    return [group for group in groups if group in merger.alive]


class _GroupGraph:
    """The groups and which reads which, kept exact while groups merge."""

    def __init__(self, graph: Graph, groups: list[FusionGroup], fusable: list[FusionGroup]):
        self.users = graph.users()
        self.position = {node: i for i, node in enumerate(graph.nodes)}
        self.escaping = set(graph.outputs) | {value for _, value in graph.writes}
        self.write_only = {value for _, value in graph.writes} - set(graph.outputs)
        self.order = {group: i for i, group in enumerate(groups)}
        self.alive: set[FusionGroup] = set(groups)
        self.fusable: set[FusionGroup] = set(fusable)
        self.producer = {output: group for group in groups for output in group.outputs}
        # A cheap member may be computed in several groups.
        self.groups_of: dict[Node, set[FusionGroup]] = {}
        for group in groups:
            for member in group.members:
                self.groups_of.setdefault(member, set()).add(group)
        self.reads: dict[FusionGroup, set[FusionGroup]] = {group: set() for group in groups}
        self.read_by: dict[FusionGroup, set[FusionGroup]] = {group: set() for group in groups}
        for group in groups:
            for member in group.members:
                for operand in member.inputs:
                    source = self.producer.get(operand)
                    if source is not None and operand not in group and source is not group:
                        self.reads[group].add(source)
                        self.read_by[source].add(group)

    # -- the four merges ------------------------------------------------------------
    def merge_producers_into_consumers(self, max_group_size: int, max_outputs: int) -> None:
        """Merge 1: elementwise producers into the elementwise kernels reading them, to a fixed point."""
        changed = True
        while changed:
            changed = False
            for consumer in self.in_order():
                if consumer not in self.alive or consumer.kind != ELEMENTWISE:
                    continue
                for producer in sorted(self.reads[consumer], key=self.order.__getitem__):
                    if (producer in self.reads[consumer] and producer in self.fusable
                            and producer.kind == ELEMENTWISE and self.reads_in_step(consumer, producer)
                            and self.fits(producer, consumer, max_group_size, max_outputs)
                            and not self.linked_through_another(producer, consumer)):
                        self.merge(consumer, producer)
                        changed = True

    def merge_updates(self, max_outputs: int) -> None:
        """Merge 2: the elementwise kernels computing only write-back values, by output shape."""
        updates = [g for g in self.in_order() if g.kind == ELEMENTWISE
                   and all(output in self.write_only for output in g.outputs)]
        self.merge_independent(updates, _shape, max_outputs, max_group_size=None)

    def merge_siblings(self, max_group_size: int, max_outputs: int) -> None:
        """Merge 3: pooling or reduction kernels looping over a common input the same way."""
        anchored = [g for g in self.in_order() if g.kind in (WINDOW, REDUCTION)]
        self.merge_independent(anchored, self.sibling_key, max_outputs, max_group_size,
                               compatible=self.share_an_input)

    def merge_epilogues(self, max_group_size: int, max_outputs: int) -> None:
        """Merge 4: each elementwise kernel into the first anchored kernel it can be the epilogue of."""
        for consumer in self.in_order():
            if consumer.kind != ELEMENTWISE:
                continue
            for producer in sorted(self.reads[consumer], key=self.order.__getitem__):
                if (producer in self.fusable and producer.anchor is not None
                        and self.reads_in_step(consumer, producer)
                        and self.fits(producer, consumer, max_group_size, max_outputs)
                        and not self.linked_through_another(producer, consumer)):
                    self.merge(producer, consumer)
                    break

    def merge_independent(self, candidates: list[FusionGroup], key, max_outputs: int,
                          max_group_size: int | None, compatible=lambda first, second: True) -> None:
        """Merge candidates with equal ``key`` (None: never) that are ``compatible`` and that no
        path links, each into the first such earlier cluster."""
        merged_by_key: dict[object, list[FusionGroup]] = {}
        for group in candidates:
            group_key = key(group)
            if group_key is None:
                continue
            clusters = merged_by_key.setdefault(group_key, [])
            for cluster in clusters:
                if (self.fits(cluster, group, max_group_size, max_outputs) and compatible(cluster, group)
                        and not self.linked(cluster, group)):
                    self.merge(cluster, group)
                    break
            else:
                clusters.append(group)

    # -- conditions ----------------------------------------------------------------
    def sibling_key(self, group: FusionGroup):
        """Groups with equal keys loop over the same input the same way: pooling with one window
        over one input, or reductions over the same axes of the same shape reading a common input."""
        anchor = group.anchor
        if group.kind == WINDOW:
            if anchor.op not in ("max_pool2d", "max_pool2d_argmax", "avg_pool2d"):
                return None
            return ("window", anchor.inputs[0], attrs_key(anchor.attrs), _shape(group))
        return None if _shape(group) is None else (
            "reduction", anchor.inputs[0].shape, attrs_key(anchor.attrs), _shape(group))

    @staticmethod
    def share_an_input(first: FusionGroup, second: FusionGroup) -> bool:
        """Whether the two groups read some value in common (which the merged kernel reads once)."""
        def external(group):
            return {operand for member in group.members for operand in member.inputs if operand not in group}
        return bool(external(first) & external(second))

    def reads_in_step(self, reader: FusionGroup, producer: FusionGroup) -> bool:
        """Whether every output of ``producer`` that ``reader`` reads has ``reader``'s output shape,
        and reaches ``reader``'s outputs only through ops that keep element order at that size."""
        shape = _shape(reader)
        if shape is None or _shape(producer) != shape:
            return False
        size = reader.outputs[0].type.numel
        reached = {output for output in producer.outputs}
        for member in sorted(reader.members, key=self.position.__getitem__):
            if any(operand in reached for operand in member.inputs):
                if not keeps_element_order(member) or member.type.numel != size:
                    return False
                reached.add(member)
        return True

    def fits(self, first: FusionGroup, second: FusionGroup, max_group_size: int | None, max_outputs: int) -> bool:
        if max_group_size is not None and len(set(first.members) | set(second.members)) > max_group_size:
            return False
        return len(first.outputs) + len(second.outputs) <= max_outputs

    def linked(self, first: FusionGroup, second: FusionGroup) -> bool:
        """Whether a path leads from either group to the other."""
        return self.reaches(first, second, direct=True) or self.reaches(second, first, direct=True)

    def linked_through_another(self, producer: FusionGroup, consumer: FusionGroup) -> bool:
        """Whether a path leads from ``producer`` to ``consumer`` through some third group."""
        return self.reaches(producer, consumer, direct=False)

    def reaches(self, start: FusionGroup, goal: FusionGroup, direct: bool) -> bool:
        pending = [g for g in self.read_by[start] if direct or g is not goal]
        seen = set(pending)
        while pending:
            group = pending.pop()
            if group is goal:
                return True
            for later in self.read_by[group]:
                if later not in seen:
                    seen.add(later)
                    pending.append(later)
        return False

    # -- merging ------------------------------------------------------------------
    def merge(self, keep: FusionGroup, gone: FusionGroup) -> None:
        """Make ``keep`` compute ``gone`` as well; outputs nothing outside reads any more stop being stored."""
        for member, count in gone.recompute.items():
            keep.recompute[member] = max(count, keep.recompute.get(member, 0))
        keep.operand_views |= gone.operand_views
        keep.anchor = keep.anchor or gone.anchor
        for member in gone.members:
            self.groups_of[member].discard(gone)
            self.groups_of[member].add(keep)
        outputs = sorted([*keep.outputs, *gone.outputs], key=self.position.__getitem__)
        keep.outputs = [o for o in outputs if self.read_outside(keep, o)]
        for output in gone.outputs:
            self.producer[output] = keep
        for source in self.reads.pop(gone):
            self.read_by[source].discard(gone)
            if source is not keep:
                self.reads[keep].add(source)
                self.read_by[source].add(keep)
        for reader in self.read_by.pop(gone):
            self.reads[reader].discard(gone)
            if reader is not keep:
                self.read_by[keep].add(reader)
                self.reads[reader].add(keep)
        self.read_by[keep].discard(keep)
        self.reads[keep].discard(keep)
        self.order[keep] = min(self.order[keep], self.order[gone])
        self.alive.discard(gone)

    def read_outside(self, group: FusionGroup, value: Node) -> bool:
        """Whether ``value`` escapes the graph, some other group reads it from memory, or nothing
        reads it at all (dead code is simplify's to remove, not fusion's)."""
        return value in self.escaping or not self.users[value] or any(
            other is not group and value not in other
            for user in self.users[value] for other in self.groups_of.get(user, ()))

    def in_order(self) -> list[FusionGroup]:
        """The groups that may still merge, in their original order."""
        return sorted(self.alive & self.fusable, key=self.order.__getitem__)



def _shape(group: FusionGroup) -> tuple[int, ...] | None:
    """The one shape of a group's outputs (None if they differ, which no kernel allows)."""
    shapes = {output.shape for output in group.outputs}
    return next(iter(shapes)) if len(shapes) == 1 else None
