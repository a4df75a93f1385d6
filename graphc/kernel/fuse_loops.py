"""Sibling reduction loops over the same range fused into one: one pass over the data.

A fused kernel computing several reductions of the same elements (BatchNorm's
backward: the sum of the gradient and the sum of the gradient times the
normalized input, per channel) gets one accumulator and one loop nest per
reduction from the lowering, each reading the whole channel again.  When two
such loops are neighbours (nothing but accumulator declarations between them),
run over the same range, and the second does not read what the first
accumulates, their bodies can share one loop: the second's variable is bound
to the first's.  Each accumulator still adds its terms in the same order, so
the results are the same bits; the data is read once.

Only loops of lets, accumulations and inner loops are fused: a loop that
stores or checks stays as it is.
"""
from __future__ import annotations

from dataclasses import replace

from .ir import (Accumulator, Assign, Kernel, Let, Loop, Ref, Stmt, Var, statement_exprs, substitute_var, walk_expr,
                 walk_statements)


def fuse_sibling_loops(kernel: Kernel) -> Kernel:
    return replace(kernel, body=_fused_block(kernel.body))


def _fused_block(body: tuple[Stmt, ...]) -> tuple[Stmt, ...]:
    block: list[Stmt] = []
    for stmt in body:
        if isinstance(stmt, Loop):
            stmt = replace(stmt, body=_fused_block(stmt.body))
            previous = _previous_loop(block)
            if previous is not None and _fusable(block[previous], stmt, block[previous + 1:]):
                first, declarations = block[previous], block[previous + 1:]
                # The second's variable renamed the first's (not bound to it by a let: what reads
                # an index sees the loop's own variable, as partial_sums does).
                second = substitute_var(stmt.body, stmt.var, Var(first.var))
                merged = Loop(first.var, first.start, first.stop, _fused_block((*first.body, *second)), first.kind,
                              first.padded_to)
                block[previous:] = [*declarations, merged]
                continue
        block.append(stmt)
    return tuple(block)


def _previous_loop(block: list[Stmt]) -> int | None:
    """The position of the last loop of ``block`` when only accumulator declarations follow it."""
    for position in range(len(block) - 1, -1, -1):
        if isinstance(block[position], Loop):
            return position
        if not isinstance(block[position], Accumulator):
            return None
    return None


def _fusable(first: Loop, second: Loop, declarations: list[Accumulator]) -> bool:
    """Whether ``second`` (after ``declarations``, which move before ``first``) may share ``first``'s loop."""
    if (first.kind, first.start, first.stop, first.padded_to) != (second.kind, second.start, second.stop, second.padded_to) \
            or first.kind == "parallel":
        return False
    if not (_accumulates_only(first) and _accumulates_only(second)):
        return False
    accumulated = {stmt.name for stmt in walk_statements(first.body) if isinstance(stmt, Assign)}
    read = {e.name for stmt in (*declarations, *walk_statements(second.body)) for x in statement_exprs(stmt)
            for e in walk_expr(x) if isinstance(e, Ref)}
    return not accumulated & read


def _accumulates_only(loop: Loop) -> bool:
    return all(isinstance(stmt, (Let, Assign, Accumulator, Loop)) for stmt in walk_statements(loop.body))
