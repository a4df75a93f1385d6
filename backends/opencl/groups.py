"""Which reductions a whole work-group computes, and how their partial results combine.

A kernel with few outputs and long reductions leaves a device idle when each work-item folds
its output's reduction alone (a bias gradient or a batch-norm statistic: 16-64 outputs of
thousands of elements each; a loss: one output).  There one work-group computes each output:

* the reduction's elements, its loops flattened into one index ``f``, are dealt round-robin
  into ``partials`` folds (element ``f`` to fold ``f % partials``, each fold taking its
  elements in order), so neighbouring work-items read neighbouring elements;
* the work-group's work-items share the folds out (work-item ``w`` of ``W`` folds
  ``w``, ``w + W``, ...), each writing its fold's result to local memory;
* the folds are combined pairwise in a fixed tree (fold ``p`` with ``p + partials / 2``,
  then with ``p + partials / 4``, ...), and every work-item reads the result.

``partials`` follows from the reduction's length and the device's local memory, never from
``W``: the result is the same whatever work-group size the runtime picks.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphc.ir.dtypes import DType
from graphc.kernel.ir import (Accumulator, Assign, Binary, Cast, Check, Const, Expr, Let, Load, Local, Loop, Ref,
                              Select, Store, Unary, walk_expr, walk_statements)

# Work-groups per compute unit a kernel needs to keep the device busy (and balanced): a kernel with
# fewer outputs than that many groups leaves compute units idle with a work-item per output.
GROUPS_PER_COMPUTE_UNIT = 8
# Each fold takes at least this many elements: the tree's steps stay cheap beside the folds.
MIN_FOLD_LENGTH = 8
# Fewer folds than this: the reduction is too short to be worth a work-group.
MIN_PARTIALS = 8
# More folds than this buy nothing on any device's work-group, and cost local memory.
MAX_PARTIALS = 256

# The two partial results a combining step reads, as names in ``Fold.combine``.
LEFT, RIGHT = "partial_left", "partial_right"


@dataclass(frozen=True)
class DeviceLimits:
    """What work-groups are shaped by: the device's most work-items in a group, its local memory
    (and whether that is memory of its own, as a GPU's is, or the global memory a CPU device
    uses for it), its compute units, and the floats it prefers in a vector (a CPU's SIMD width;
    1 on a GPU, whose work-items are its lanes)."""
    max_work_group_size: int
    local_memory_bytes: int
    dedicated_local_memory: bool
    compute_units: int
    float_vector_width: int = 1


@dataclass(frozen=True)
class Fold:
    """One accumulator of a group reduction: each fold starts from ``init``, and ``combine`` merges
    two partial results (an expression of ``Ref(LEFT)`` and ``Ref(RIGHT)``)."""
    accumulator: str
    init: Expr
    combine: Expr

    @property
    def dtype(self) -> DType:
        return self.init.dtype


@dataclass(frozen=True)
class GroupReduction:
    """A reduction nest computed by a work-group: its loops (outermost first), the elements they
    visit, the folds those are dealt into, and the accumulators folded."""
    loops: tuple[Loop, ...]
    length: int
    partials: int
    folds: tuple[Fold, ...]


def plan_group_reductions(body, outputs: int, limits: DeviceLimits) -> dict[int, GroupReduction]:
    """The reduction nests among ``body``'s statements (what one output's work-item runs) that a
    work-group computes, by the id of their outer loop; {} where the kernel keeps a work-item per
    output: its outputs are enough to give every compute unit its groups (on PoCL's 2 compute
    units, 16 outputs: with a group per output, ResNet's 64-channel batch-norm sums ran 30% slower
    there than a work-item each; a GPU has 100+ compute units), a reduction is short, or the body
    does something else a work-group could not share (a scratch tile, a loop storing outputs)."""
    if outputs >= limits.compute_units * GROUPS_PER_COMPUTE_UNIT:
        return {}
    accumulators = {}
    plans = {}
    for stmt in body:
        if isinstance(stmt, Accumulator):
            accumulators[stmt.name] = stmt
        elif isinstance(stmt, Local):
            return {}
        elif isinstance(stmt, Loop):
            plan = _plan(stmt, accumulators, limits)
            if plan is not None:
                plans[id(stmt)] = plan
            elif any(isinstance(s, Store) for s in walk_statements(stmt.body)):
                return {}             # outputs stored in a loop every work-item of a group would run
    local_bytes = sum(plan.partials * fold.dtype.itemsize for plan in plans.values() for fold in plan.folds)
    return plans if local_bytes <= limits.local_memory_bytes // 2 else {}


def _plan(loop: Loop, accumulators: dict[str, Accumulator], limits: DeviceLimits) -> GroupReduction | None:
    loops = [loop]
    while len(loops[-1].body) == 1 and isinstance(loops[-1].body[0], Loop):
        loops.append(loops[-1].body[0])
    if not all(isinstance(x.start, Const) and isinstance(x.stop, Const) for x in loops):
        return None
    inner = loops[-1].body
    if not all(isinstance(stmt, (Let, Assign, Check)) for stmt in inner):
        return None
    assigns = [stmt for stmt in inner if isinstance(stmt, Assign)]
    names = [a.name for a in assigns]
    if not assigns or len(set(names)) != len(names) or not set(names) <= set(accumulators):
        return None
    for stmt in inner:                        # each accumulator read by its own update alone
        for e in (stmt.value, *((stmt.cond,) if isinstance(stmt, Check) else ())):
            read = {x.name for x in walk_expr(e) if isinstance(x, Ref)} & set(names)
            if read - ({stmt.name} if isinstance(stmt, Assign) else set()):
                return None
    folds = []
    for assign in assigns:
        combine = _combine(assign, accumulators[assign.name])
        if combine is None:
            return None
        folds.append(Fold(assign.name, accumulators[assign.name].init, combine))
    length = 1
    for x in loops:
        length *= max(0, x.stop.value - x.start.value)
    partials = 1
    while partials * 2 <= min(MAX_PARTIALS, limits.max_work_group_size) and partials * 2 * MIN_FOLD_LENGTH <= length:
        partials *= 2
    return GroupReduction(tuple(loops), length, partials, tuple(folds)) if partials >= MIN_PARTIALS else None


def _combine(assign: Assign, accumulator: Accumulator) -> Expr | None:
    """How two partial results of ``accumulator`` merge, where its update is a fold that takes
    them in any grouping: a sum the kernel IR marks reassociable (from zero), a float or integer
    max or min, or a max/min as ``select(x > acc | isnan(x), x, acc)`` (the reductions of
    graphc/ops/reduce.py); None for any other update (an argmax's, say)."""
    acc = Ref(assign.name, accumulator.init.dtype)
    left, right = Ref(LEFT, acc.dtype), Ref(RIGHT, acc.dtype)
    value = assign.value
    if isinstance(value, Binary) and acc in (value.a, value.b):
        term = value.b if value.a == acc else value.a
        if _reads(term, acc.name):
            return None
        if value.op == "add" and accumulator.reassociable and _is_zero(accumulator.init):
            return Binary("add", left, right, acc.dtype)
        if value.op in ("max", "min"):
            return Binary(value.op, left, right, acc.dtype)
        return None
    if isinstance(value, Select) and value.b == acc and not _reads(value.a, acc.name):
        term = value.a
        if _takes_over(value.cond, term, acc):
            return _replace(_replace(value, acc, left), term, right)
    return None


def _takes_over(cond: Expr, term: Expr, acc: Ref) -> bool:
    """Whether ``cond`` is ``term > acc`` or ``term < acc``, maybe ``| isnan(term)``: an order."""
    if isinstance(cond, Binary) and cond.op == "or" and cond.b == Unary("isnan", term, cond.b.dtype):
        cond = cond.a
    return isinstance(cond, Binary) and cond.op in ("gt", "lt") and (cond.a, cond.b) == (term, acc)


def _is_zero(e: Expr) -> bool:
    return isinstance(e, Const) and e.value == 0


def _reads(e: Expr, name: str) -> bool:
    return any(isinstance(x, Ref) and x.name == name for x in walk_expr(e))


def _replace(e: Expr, old: Expr, new: Expr) -> Expr:
    """``e`` with every occurrence of the subexpression ``old`` replaced by ``new``."""
    if e == old:
        return new
    if isinstance(e, Binary):
        return Binary(e.op, _replace(e.a, old, new), _replace(e.b, old, new), e.dtype)
    if isinstance(e, Unary):
        return Unary(e.op, _replace(e.x, old, new), e.dtype)
    if isinstance(e, Select):
        return Select(_replace(e.cond, old, new), _replace(e.a, old, new), _replace(e.b, old, new), e.dtype)
    if isinstance(e, Cast):
        return Cast(_replace(e.x, old, new), e.dtype)
    if isinstance(e, Load):
        return Load(e.buffer, _replace(e.index, old, new), e.dtype)
    return e
