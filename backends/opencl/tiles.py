"""Register tiles computed by work-groups that stage their operands through local memory.

A matmul (a convolution is an unfold and a matmul) reaches the renderer as register tiles:
each work-item accumulates a tile of rows x lanes outputs (``KernelBuilder.tiled``), its
reduction loop reading, at every step, a column of the left operand and a row of the right.
Neighbouring work-items read the same values: those along dimension 0 (row blocks) share the
right operand's row, those along dimension 1 share the left operand's column.  Here a
work-group of ``G0 x G1`` work-items copies, for each chunk of ``chunk`` reduction steps, the
values its work-items share into local memory once (all work-items taking part), waits at a
barrier, and every work-item runs its steps of the chunk on the local copies.

Each work-item still adds its products in the kernel IR's order: the result is the same as
without staging.  The shapes come from the device: a group of at most ``MAX_GROUP`` work-items
(and the device's limit), dividing the NDRange exactly (so every work-item of a group reaches
every barrier), and chunks whose copies fit in half the device's local memory.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from graphc.ir.dtypes import i64
from graphc.kernel import expr as E
from graphc.kernel.ir import (Binary, Cast, Const, Expr, Let, Load, Local, Loop, Select, Store, Unary, Var,
                              walk_expr, walk_statements)

from .groups import DeviceLimits

# Work-items per group at most: 256 runs on every GPU even with a register tile per work-item.
MAX_GROUP = 256
# Work-items along one dimension of a group at most.
MAX_SIDE = 16
# Reduction steps staged at once at most.
MAX_CHUNK = 16
# The local position of a work-item in its group, as variables of the rewritten kernel IR.
LOCAL_IDS = ("l0", "l1")


@dataclass(frozen=True)
class StagedLoad:
    """One operand's values a group shares in a chunk: ``buffer`` read at ``index`` (the kernel IR's
    own index expression), copied to the local array ``name`` laid out as [step][group
    positions][tile variables], ``shape`` its extents in that order."""
    name: str
    buffer: str
    dtype: object
    index: Expr
    group_dims: tuple[int, ...]              # which of the group's dimensions (0, 1) the values vary along
    tile_vars: tuple[tuple[str, int], ...]   # (variable, extent) of the register tile it varies along
    size: int


@dataclass(frozen=True)
class StagedTile:
    """A reduction loop run in chunks (``loop``, the rewritten one: over chunks, its body the
    original loop over one chunk's steps), the loads staged each chunk, the group's shape."""
    loop: Loop
    variable: str                            # the original reduction variable
    length: int                              # its trip count
    chunk: int
    group: tuple[int, int]
    loads: tuple[StagedLoad, ...]


def stage_tiles(collapsed: list[Loop], rest: tuple, limits: DeviceLimits) -> tuple[tuple, dict[int, StagedTile]]:
    """``rest`` (a work-item's statements, ``collapsed`` the loops spread over the NDRange) with
    its tiles' reduction loops staged where that shares loads between work-items; and the plans
    by the id of each rewritten loop.  ``rest`` unchanged and {} where nothing is staged."""
    if not collapsed or not limits.dedicated_local_memory:
        return rest, {}
    *outer, inner = collapsed
    columns = inner.stop.value - inner.start.value
    rows = 1
    for loop in outer:
        rows *= loop.stop.value - loop.start.value
    group = _group_shape(columns, rows, limits)
    if group == (1, 1):
        return rest, {}
    dims = {inner.var: 0, **{loop.var: 1 for loop in outer}}
    locals_ = {s.name for s in walk_statements(rest) if isinstance(s, Local)}
    plans: dict[int, StagedTile] = {}
    staged_rest = []
    for stmt in rest:
        plan = _plan(stmt, dims, group, locals_, limits, f"staged{len(plans)}") if isinstance(stmt, Loop) else None
        if plan is None:
            staged_rest.append(stmt)
        else:
            plans[id(plan.loop)] = plan
            staged_rest.append(plan.loop)
    return (tuple(staged_rest), plans) if plans else (rest, {})


def _group_shape(columns: int, rows: int, limits: DeviceLimits) -> tuple[int, int]:
    """(G0, G1): the largest divisors of the NDRange's extents within the group limits."""
    most = min(MAX_GROUP, limits.max_work_group_size)
    g0 = max(d for d in range(1, min(MAX_SIDE, columns, most) + 1) if columns % d == 0)
    g1 = max(d for d in range(1, min(MAX_SIDE, rows, most // g0) + 1) if rows % d == 0)
    return g0, g1


def _tile_loops(body) -> list[tuple[list[Loop], tuple]] | None:
    """The chains of unrolled/vectorized loops (a register tile's rows and lanes) ``body`` consists
    of, each with its innermost body; None if ``body`` is anything else."""
    chains = []
    for stmt in body:
        chain = []
        while isinstance(stmt, Loop) and stmt.kind in ("unrolled", "vectorized") and \
                isinstance(stmt.start, Const) and isinstance(stmt.stop, Const):
            chain.append(stmt)
            if len(stmt.body) == 1 and isinstance(stmt.body[0], Loop):
                stmt = stmt.body[0]
            else:
                break
        if not chain or not all(isinstance(s, (Let, Store)) for s in chain[-1].body):
            return None
        chains.append((chain, chain[-1].body))
    return chains


def _plan(loop: Loop, dims: dict[str, int], group: tuple[int, int], locals_: set[str], limits: DeviceLimits,
          prefix: str) -> StagedTile | None:
    if loop.kind != "serial" or not (isinstance(loop.start, Const) and isinstance(loop.stop, Const)):
        return None
    chains = _tile_loops(loop.body)
    if not chains:
        return None
    candidates = []
    for chain, body in chains:
        tile = {x.var: x.stop.value - x.start.value for x in chain}
        for stmt in body:
            for e in (stmt.value, *((stmt.index,) if isinstance(stmt, Store) else ())):
                for load in (x for x in walk_expr(e) if isinstance(x, Load) and x.buffer not in locals_):
                    parts = list(walk_expr(load.index))
                    variables = {x.name for x in parts if isinstance(x, Var)}
                    if not all(isinstance(x, (Var, Const, Binary)) for x in parts) or loop.var not in variables \
                            or not variables <= {loop.var, *dims, *tile}:
                        continue                  # not an index of the loops' variables alone
                    along = tuple(sorted({dims[v] for v in variables if v in dims}))
                    if not any(d not in along and group[d] > 1 for d in range(2)):
                        continue                  # no two work-items of a group read the same values
                    tile_vars = tuple((v, n) for v, n in tile.items() if v in variables)
                    candidates.append((load, along, tile_vars))
    if not candidates:
        return None
    length = loop.stop.value - loop.start.value
    loads: dict[tuple, StagedLoad] = {}
    for load, along, tile_vars in candidates:
        key = (load.buffer, load.index)
        if key not in loads:
            per_step = 1
            for d in along:
                per_step *= group[d]
            for _, n in tile_vars:
                per_step *= n
            loads[key] = StagedLoad(f"{prefix}_{len(loads)}", load.buffer, load.dtype, load.index, along, tile_vars,
                                    per_step)
    chunk = min(MAX_CHUNK, length)
    while chunk > 1 and chunk * sum(s.size * s.dtype.itemsize for s in loads.values()) > limits.local_memory_bytes // 2:
        chunk //= 2
    if chunk * sum(s.size * s.dtype.itemsize for s in loads.values()) > limits.local_memory_bytes // 2:
        return None
    staged = tuple(replace(s, size=s.size * chunk) for s in loads.values())
    return StagedTile(_rewrite(loop, chunk, staged, group), loop.var, length, chunk, group, staged)


def _rewrite(loop: Loop, chunk: int, loads: tuple[StagedLoad, ...], group: tuple[int, int]) -> Loop:
    """``loop`` as a loop over chunks around the loop over one chunk's steps, each staged load
    read from its local array instead."""
    first = loop.var + "_chunk"
    start = E.add(loop.start, E.mul(Var(first), chunk))
    stop = E.minimum(E.add(start, chunk), loop.stop)
    step = E.sub(Var(loop.var), start)
    by_key = {(s.buffer, s.index): s for s in loads}

    def local_index(s: StagedLoad) -> Expr:
        index = step
        for d in s.group_dims:
            index = E.add(E.mul(index, group[d]), Var(LOCAL_IDS[d]))
        for var, n in s.tile_vars:
            index = E.add(E.mul(index, n), Var(var))
        return index

    def swap(e):
        if isinstance(e, Load) and (e.buffer, e.index) in by_key:
            s = by_key[(e.buffer, e.index)]
            return Load(s.name, local_index(s), e.dtype)
        return _map_children(e, swap)

    body = tuple(_map_statement(stmt, swap) for stmt in loop.body)
    trips = -(-(loop.stop.value - loop.start.value) // chunk)
    steps = Loop(loop.var, start, stop, body, "serial")
    return Loop(first, Const(0, i64), Const(trips, i64), (steps,), "serial")


def _map_children(e, f):
    if isinstance(e, Binary):
        return Binary(e.op, f(e.a), f(e.b), e.dtype)
    if isinstance(e, Unary):
        return Unary(e.op, f(e.x), e.dtype)
    if isinstance(e, Select):
        return Select(f(e.cond), f(e.a), f(e.b), e.dtype)
    if isinstance(e, Cast):
        return Cast(f(e.x), e.dtype)
    if isinstance(e, Load):
        return Load(e.buffer, f(e.index), e.dtype)
    return e


def _map_statement(stmt, f):
    if isinstance(stmt, Loop):
        return replace(stmt, body=tuple(_map_statement(s, f) for s in stmt.body))
    if isinstance(stmt, Let):
        return replace(stmt, value=f(stmt.value))
    if isinstance(stmt, Store):
        return replace(stmt, index=f(stmt.index), value=f(stmt.value))
    return stmt
