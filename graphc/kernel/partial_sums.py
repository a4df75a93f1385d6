"""Sums over terms side by side in memory, added in rows of partial sums: a CPU schedule.

The lowering folds a sum into an accumulator, one term per iteration of its loops.  A
sum whose innermost loop runs over terms side by side in memory (a BatchNorm statistic:
an image's H x W, inside a loop over the batch) is best added in vectors along that
loop: a row of partial sums, one lane per term of each block of terms, added up in
halves once the loops end.  Left to LLVM, which vectorizes innermost loops only and
first unrolls a short constant one whole, such a sum was vectorized along the batch
instead, in gathers 16 KiB apart: ResNet's 57 BatchNorm sums took 1.85 ms of its
one-thread step.

``sums_in_vectors`` rewrites each such loop nest; the LLVM backend runs it on every
kernel (the OpenCL backend keeps the accumulators, which its work-group reductions fold
on a GPU: ``graphc.backends.opencl.groups``).  Every accumulator the nest adds to gets
a row of its own, so sibling sums fused into one nest (``fuse_loops``) still read their
terms once.  Each output's terms are added in another order (lane by lane, then the
lanes in halves), which a reassociable accumulator allows.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir.dtypes import i64
from . import expr as E
from .indices import loop_stride
from .ir import (Accumulator, Assign, Binary, Const, Kernel, Let, Load, Local, Loop, Ref, Store, Var, substitute_var,
                 walk_expr, walk_statements)

# The widths a row of partial sums may take, widest first: the widest that divides the innermost
# loop's trip count.  64 floats are four AVX-512 registers (eight AVX2 ones): independent chains
# of additions, where one register's would wait on each addition's latency.
PARTIAL_SUMS = (64, 32, 16)


def sums_in_vectors(kernel: Kernel) -> Kernel:
    body = _block(kernel.body)
    return kernel if body is kernel.body else replace(kernel, body=body)


def _block(body: tuple) -> tuple:
    declared: dict[str, Accumulator] = {}
    block: list = []
    changed = False
    for position, stmt in enumerate(body):
        if isinstance(stmt, Accumulator):
            declared[stmt.name] = stmt
        elif isinstance(stmt, Loop):
            rewritten = _in_vectors(stmt, declared)
            if rewritten is not None and not _assigned(body[position + 1:], set(rewritten[0])):
                rows, loop, results = rewritten
                block = [s for old in block for s in (rows[old.name] if isinstance(old, Accumulator)
                                                      and old.name in rows else (old,))]
                block += [loop, *results]
                changed = True
                continue
            inner = _block(stmt.body)
            if inner is not stmt.body:
                stmt, changed = replace(stmt, body=inner), True
        block.append(stmt)
    return tuple(block) if changed else body


def _in_vectors(loop: Loop, declared: dict[str, Accumulator]):
    """``loop``'s nest with its sums in rows of partial sums: (each accumulator's row and the loop
    zeroing it, by name; the nest; the lets of the sums' results), or None where the nest is not
    a chain of serial loops around lets and sums of terms that lie side by side or do not move."""
    chain = [loop]
    while len(chain[-1].body) == 1 and isinstance(chain[-1].body[0], Loop):
        chain.append(chain[-1].body[0])
    innermost = chain[-1]
    if any(link.kind != "serial" for link in chain) or not isinstance(innermost.start, Const) \
            or not isinstance(innermost.stop, Const):
        return None
    trip = innermost.stop.value - innermost.start.value
    lanes = next((width for width in PARTIAL_SUMS if trip % width == 0), None)
    body = innermost.body
    if lanes is None or not all(isinstance(stmt, (Let, Assign)) for stmt in body):
        return None
    terms = {stmt.name: _term(stmt, declared.get(stmt.name)) for stmt in body if isinstance(stmt, Assign)}
    if not terms or None in terms.values() or len(terms) != sum(isinstance(s, Assign) for s in body):
        return None
    lets = {stmt.name for stmt in body if isinstance(stmt, Let)}
    values = [stmt.value for stmt in body if isinstance(stmt, Let)] + list(terms.values())
    for e in (e for value in values for e in walk_expr(value)):
        if isinstance(e, Ref) and e.name in terms:
            return None                                  # a term reads a sum before it is done
        if isinstance(e, Load) and loop_stride(e.index, innermost.var, lets) not in (0, 1):
            return None                                  # terms that do not lie side by side

    block, lane = innermost.var + "_block", innermost.var + "_lane"
    position = E.add(E.add(E.mul(Var(block), lanes), Var(lane)), innermost.start)
    rows = {name: f"{name}_lanes" for name in terms}
    vector_body = []
    for stmt in substitute_var(body, innermost.var, position):
        if isinstance(stmt, Assign):
            dtype = declared[stmt.name].init.dtype
            current = Load(rows[stmt.name], Var(lane), dtype)
            term = _term(stmt, declared[stmt.name])
            stmt = Store(rows[stmt.name], Var(lane), Binary("add", current, term, dtype), True)
        vector_body.append(stmt)
    nest = Loop(block, Const(0, i64), Const(trip // lanes, i64),
                (Loop(lane, Const(0, i64), Const(lanes, i64), tuple(vector_body), "vectorized"),))
    for link in reversed(chain[:-1]):
        nest = replace(link, body=(nest,))

    declarations, results = {}, []
    for name, row in rows.items():
        init = declared[name].init
        zeroed = Store(row, Var(f"{row}_zero"), Const(0, init.dtype))
        zero = Loop(f"{row}_zero", Const(0, i64), Const(lanes, i64), (zeroed,), "vectorized")
        declarations[name] = (Local(row, init.dtype, lanes), zero)
        parts = [Load(row, Const(k, i64), init.dtype) for k in range(lanes)]
        while len(parts) > 1:
            half = len(parts) // 2
            parts = [Binary("add", parts[k], parts[k + half], init.dtype) for k in range(half)]
        total = parts[0] if isinstance(init, Const) and init.value == 0 else Binary("add", init, parts[0], init.dtype)
        results.append(Let(name, total))
    return declarations, nest, results


def _assigned(body: tuple, names: set[str]) -> bool:
    return any(isinstance(stmt, Assign) and stmt.name in names for stmt in walk_statements(body))


def _term(assign: Assign, accumulator: Accumulator | None):
    """What ``assign`` adds to a reassociable accumulator (``acc = acc + term``), or None."""
    value = assign.value
    if accumulator is None or not accumulator.reassociable or not isinstance(value, Binary) or value.op != "add":
        return None
    own = Ref(assign.name, value.dtype)
    if value.a == own:
        return value.b
    if value.b == own:
        return value.a
    return None
