"""Schedules: transformations of a kernel's loops that keep what it computes.

A schedule decides how a loop nest runs, not what it computes: which loop
runs on the thread pool (``parallel``), which one the backend should
vectorize, how a loop is split into an outer and an inner loop.  Backends
read the loop kinds; the LLVM and OpenCL backends share every schedule.

``default_schedule`` is what every kernel gets today: its outermost loop runs
in parallel when the kernel does enough work to pay for waking the threads,
and its innermost output loop is marked for vectorization.  An elementwise
kernel's one flat loop is first split into blocks of ``VECTOR_BLOCK`` lanes
(``in_vector_blocks``), so that it too has an inner loop to vectorize.  Results
never depend on the schedule: each output element is still computed whole, by
one thread, in the same order.
"""
from __future__ import annotations

from dataclasses import replace

from . import expr as E
from .fuse_loops import fuse_sibling_loops
from .builder import KernelBuilder
from .indices import lanes_far_apart, simplify_indices
from .ir import (Binary, Const, Kernel, Let, Load, Loop, Ref, Stmt, Store, Var, statement_exprs, substitute_var,
                 walk_expr)

# Below this many estimated operations a kernel runs on the calling thread alone:
# waking the pool costs about as much as this much work.
PARALLEL_WORK = 1 << 15

# The lanes of an elementwise kernel's vector block: one AVX-512 register of floats, two AVX2 ones.
VECTOR_BLOCK = 16


def default_schedule(kernel: Kernel) -> Kernel:
    kernel = fuse_sibling_loops(kernel)
    outer = outer_loop(kernel)
    if outer is None:
        return kernel
    prelude = kernel.body[:-1]
    blocks = in_vector_blocks(outer)
    kernel = simplify_indices(replace(kernel, body=(*prelude, blocks or _split_at_divisors(outer))))
    outer = kernel.body[-1]
    if blocks is None:
        outer = _contiguous_innermost(outer)
    if work((outer,)) >= PARALLEL_WORK and _trip_count(outer) > 1:
        outer = mark(outer, "parallel")
    innermost = _innermost_output_loop(outer)
    if innermost is not outer and not any(isinstance(stmt, Loop) for stmt in innermost.body) \
            and not _copies_far_apart(innermost):
        outer = _replace_loop(outer, innermost.var, lambda loop: mark(loop, "vectorized"))
    return replace(kernel, body=(*prelude, outer))


def in_vector_blocks(loop: Loop) -> Loop | None:
    """An elementwise loop (each iteration stores its own element of every output, from lets
    and loads) as a loop over blocks of VECTOR_BLOCK iterations and, inside, a loop over the
    block's lanes; None where ``loop`` is not such a loop or its trip count is not a multiple
    of the block (its lanes would need masks; LLVM's loop vectorizer then takes it, as before).

    The kernel IR says its lanes are independent, so a backend vectorizes them with no check
    that the buffers overlap, where LLVM's own vectorizer checks every pair of buffers a loop
    writes and reads at run time, and gives up past a few: a ResNet's fused Adam update of 12
    parameters (84 buffers) ran as scalar code, 1.1 ms of its step on one thread."""
    if not (isinstance(loop.start, Const) and loop.start.value == 0 and isinstance(loop.stop, Const)):
        return None
    trip = loop.stop.value
    if trip < 2 * VECTOR_BLOCK or trip % VECTOR_BLOCK or not all(isinstance(s, (Let, Store)) for s in loop.body):
        return None
    own = Var(loop.var)
    stored = {stmt.buffer for stmt in loop.body if isinstance(stmt, Store)}
    if any(stmt.index != own for stmt in loop.body if isinstance(stmt, Store)):
        return None
    for stmt in loop.body:                # an output read at another element: lanes would depend
        for e in walk_expr(stmt.value):
            if isinstance(e, Load) and e.buffer in stored and e.index != own:
                return None
    return _split_at(loop, VECTOR_BLOCK)


# The fewest lanes a loop split at its indices' divisor keeps (_split_at_divisors), and the most
# lanes a loop brought innermost may have (graphc.backends.llvm.lanes.MAX_LANES: one vector pass).
MIN_SPLIT_LANES = 8
MAX_ROW_LANES = 64


def _output_chain(outer: Loop) -> list[Loop]:
    """The output loops: ``outer`` and the loops nested alone inside it, innermost last."""
    chain = [outer]
    while (inner := _only_loop(chain[-1].body)) is not None:
        chain.append(inner)
    return chain


def _split_at_divisors(outer: Loop) -> Loop:
    """The output loops whose variable the indices divide by ``d`` (``i / d``, ``i % d``: a row of a
    permuted tensor, its axes merged), where ``d`` divides the trip count, each split at it into a
    loop over ``i / d`` around one over ``i % d`` (``_split_at``): the divisions fold away, and the
    loop over ``i % d`` may run the lanes.  The DCGAN's BatchNorm gradients stored channel-major
    read [32, 128, 49] through rows of 1568 lanes, a division and a remainder per lane."""
    for var in [loop.var for loop in _output_chain(outer)]:
        chain = _output_chain(outer)
        body = chain[-1].body
        if not all(isinstance(stmt, (Let, Store)) for stmt in body):
            return outer
        loop = next(loop for loop in chain if loop.var == var)
        divisor = _divisor(loop, body)
        if divisor is not None:
            outer = _replace_loop(outer, var, lambda loop: _split_at(loop, divisor))
    return outer


def _divisor(loop: Loop, body: tuple) -> int | None:
    """The largest divisor of ``loop``'s trip count (from 0) that ``body`` divides its variable by."""
    if not (isinstance(loop.start, Const) and loop.start.value == 0 and isinstance(loop.stop, Const)):
        return None
    trip = loop.stop.value
    divisors = {e.b.value for stmt in body for x in statement_exprs(stmt) for e in walk_expr(x)
                if isinstance(e, Binary) and e.op in ("div", "rem") and e.a == Var(loop.var) and isinstance(e.b, Const)}
    return max((d for d in divisors if MIN_SPLIT_LANES <= d < trip and trip % d == 0), default=None)


def _split_at(loop: Loop, divisor: int) -> Loop:
    """``loop`` (from 0) as a loop over ``i / divisor`` around a loop over ``i % divisor``."""
    quotient, remainder = loop.var + "_q", loop.var + "_r"
    body = substitute_var(loop.body, loop.var, E.add(E.mul(Var(quotient), divisor), Var(remainder)))
    dtype = loop.stop.dtype
    inner = Loop(remainder, Const(0, dtype), Const(divisor, dtype), body, "serial")
    return Loop(quotient, Const(0, dtype), Const(loop.stop.value // divisor, dtype), (inner,), loop.kind)


def _contiguous_innermost(outer: Loop) -> Loop:
    """The output loops with the one along which the most accesses lie side by side innermost,
    where the innermost reads or writes two or more lane by lane (a transpose that computes: a
    BatchNorm gradient stored channel-major for the weight gradient, its operands read across
    channels 49 elements apart).  The lanes then read each operand as vectors, and store the one
    result lane by lane."""
    chain = _output_chain(outer)
    body = chain[-1].body
    if len(chain) < 2 or not all(isinstance(stmt, (Let, Store)) for stmt in body):
        return outer
    lets = {stmt.name for stmt in body if isinstance(stmt, Let)}
    accesses = [e.index for stmt in body for x in statement_exprs(stmt) for e in walk_expr(x) if isinstance(e, Load)]
    accesses += [stmt.index for stmt in body if isinstance(stmt, Store)]

    def lane_by_lane(var: str) -> int:
        return sum(1 for index in accesses if lanes_far_apart(index, var, lets))
    current = lane_by_lane(chain[-1].var)
    candidates = [loop for loop in chain[:-1] if _row_lanes(loop) is not None]
    best = min(candidates, key=lambda loop: lane_by_lane(loop.var), default=None)
    if current < 2 or best is None or lane_by_lane(best.var) >= current:
        return outer
    lanes = _row_lanes(best)
    if lanes < best.stop.value:               # the part of it one vector pass runs innermost
        split = _split_at(replace(best, body=()), lanes)
        (inner,) = split.body
        body = substitute_var(body, best.var, E.add(E.mul(Var(split.var), lanes), Var(inner.var)))
        order = [replace(split, body=()) if loop is best else loop for loop in chain] + [inner]
    else:
        order = [loop for loop in chain if loop is not best] + [best]
    nest = replace(order[-1], body=body)
    for loop in reversed(order[:-1]):
        nest = replace(loop, body=(nest,))
    return nest


def _row_lanes(loop: Loop) -> int | None:
    """The lanes of ``loop`` (from 0) one vector pass may run: all of them, up to MAX_ROW_LANES,
    else the largest divisor of its trip count that is no more (and no less than MIN_SPLIT_LANES)."""
    if not (isinstance(loop.start, Const) and loop.start.value == 0 and isinstance(loop.stop, Const)):
        return None
    trip = loop.stop.value
    if trip <= MAX_ROW_LANES:
        return trip if trip >= MIN_SPLIT_LANES else None
    return next((d for d in range(MAX_ROW_LANES, MIN_SPLIT_LANES - 1, -1) if trip % d == 0), None)


def _copies_far_apart(loop: Loop) -> bool:
    """Whether ``loop`` only copies values (lets of loads, stores of them) and reads every one
    lane by lane far apart (``indices.lanes_far_apart``: a transpose).  Vectorized, such a loop
    loads each lane alone and builds the vector from them (a 16-lane vector of a transpose: 16
    loads and 16 inserts, where the scalar loop stores each value as it loads it): the DCGAN's
    output-gradient transpose took 0.24 ms vectorized, 0.09 ms as scalar code."""
    loads = []
    for stmt in loop.body:
        value = stmt.value if isinstance(stmt, (Let, Store)) else None
        if not isinstance(value, (Load, Ref)):
            return False
        if isinstance(value, Load):
            loads.append(value)
    lets = {stmt.name for stmt in loop.body if isinstance(stmt, Let)}
    return bool(loads) and all(lanes_far_apart(load.index, loop.var, lets) for load in loads)


def outer_loop(kernel: Kernel) -> Loop | None:
    """The loop over a kernel's outputs: its last statement, after nothing but lets (the values
    every iteration shares), or None for a kernel with no loop of its own."""
    *prelude, last = kernel.body
    if isinstance(last, Loop) and all(isinstance(stmt, Let) for stmt in prelude):
        return last
    return None


def mark(loop: Loop, kind: str) -> Loop:
    return replace(loop, kind=kind)


def split(loop: Loop, factor: int, builder: KernelBuilder | None = None) -> Loop:
    """``loop`` as an outer loop over blocks of ``factor`` iterations and an inner loop
    over each block (the last block may be shorter).  The body reads the original
    variable, now ``outer * factor + inner``, through a let."""
    builder = builder or KernelBuilder()
    outer_var, inner_var = builder.fresh(loop.var + "o"), builder.fresh(loop.var + "i")
    start = E.add(loop.start, E.mul(Var(outer_var), factor))
    inner_stop = E.minimum(E.add(start, factor), loop.stop)
    trip = E.div(E.add(E.sub(loop.stop, loop.start), factor - 1), factor)
    inner = Loop(inner_var, start, inner_stop, (Let(loop.var, Var(inner_var)), *loop.body), "serial")
    return Loop(outer_var, Const(0, loop.start.dtype), trip, (inner,), loop.kind)


def work(body) -> int:
    """An estimate of the operations ``body`` performs: statements times trip counts."""
    total = 0
    for stmt in body:
        if isinstance(stmt, Loop):
            total += _trip_count(stmt) * max(1, work(stmt.body))
        else:
            total += 1
    return total


def _trip_count(loop: Loop) -> int:
    if isinstance(loop.start, Const) and isinstance(loop.stop, Const):
        return max(0, loop.stop.value - loop.start.value)
    return 8                                  # a loop whose bounds depend on an outer one


def _only_loop(body) -> Loop | None:
    loops = [stmt for stmt in body if isinstance(stmt, Loop)]
    return loops[0] if len(loops) == 1 and len(body) == 1 else None


def _innermost_output_loop(loop: Loop) -> Loop | None:
    """Follow the chain of loops that are each the only statement of their parent: the
    output loops (a reduction's loops sit among other statements)."""
    while True:
        inner = _only_loop(loop.body)
        if inner is None:
            return loop
        loop = inner


def _replace_loop(stmt: Stmt, var: str, change) -> Stmt:
    if not isinstance(stmt, Loop):
        return stmt
    if stmt.var == var:
        return change(stmt)
    return replace(stmt, body=tuple(_replace_loop(s, var, change) for s in stmt.body))

