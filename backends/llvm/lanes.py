"""Vectorized loops rendered as LLVM vector instructions, and unrolled loops rendered unrolled.

A schedule marks a loop ``vectorized`` when its iterations are independent
lanes (a row of outputs, a tile of accumulators).  When such a loop has a
constant trip count of at most ``MAX_LANES`` and a body of lets and stores,
it is rendered here as one pass of vector instructions, ``<lanes x T>``,
rather than left to LLVM's loop vectorizer, which gives up on the small
constant-trip loops of a register tile (it unrolls them first, then finds no
loop to vectorize).  Whatever does not depend on the lane is computed once as
a scalar and broadcast; a load or store whose index moves by one element per
lane is one vector load or store; any other index is read and written lane by
lane.  LLVM splits the wide vectors into the machine's registers (16 floats on
AVX-512, 8 on AVX2), so one kernel-IR tile serves every vector width.

An ``unrolled`` loop with constant bounds is rendered once per iteration with
its variable a constant: a register tile's rows, whose accumulators LLVM can
then keep in registers because every address into them is a constant.
"""
from __future__ import annotations

import operator

import llvmlite.ir as ir

from graphc.ir.dtypes import bool_, f32
from graphc.kernel.expr import fold_integer
from graphc.kernel.ir import Binary, Cast, Const, Let, Load, Loop, Ref, Select, Store, Unary, Var, walk_expr

from .types import I1, I8, I32, I64, PTR, declare_intrinsic, memory_type

# Lanes of the widest loop rendered as vectors: 64 floats are four AVX-512 registers.
MAX_LANES = 64


# A load whose lanes read addresses a constant apart is one load of the span they cover
# when that span is at most this many times the lanes (a stride-2 row: twice).
MAX_SPAN = 4


# Comparisons of Python ints; their arithmetic is graphc.kernel.expr.fold_integer's.
_COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
                "gt": operator.gt, "ge": operator.ge}


def constant_trip(loop: Loop) -> int | None:
    if isinstance(loop.start, Const) and isinstance(loop.stop, Const):
        return loop.stop.value - loop.start.value
    return None


def renders_as_vectors(loop: Loop) -> bool:
    trip = constant_trip(loop)
    return (loop.kind == "vectorized" and trip is not None and 1 < trip <= MAX_LANES
            and all(isinstance(stmt, (Let, Store)) for stmt in loop.body))


def padded_lanes(loop: Loop, trip: int, r) -> int:
    """The lanes a vectorized loop of ``trip`` lanes is computed in, where the kernel IR leaves it
    to the backend: the next power of two where that is at most one register of f32 lanes (16 on
    AVX-512, whatever the loop's types) and ``trip`` would take several pieces (a stride-2
    unfold's row of 7: 4 + 2 + 1, each a load, a shuffle and a store), the lanes past the trip
    masked (llvm.masked.load and .store).  Only on AVX-512, whose
    masked stores cost what plain ones do (AVX2's are slow on AMD), and only in a loop that
    touches no scratch row (which has no room past the trip) and divides no integer by a value
    (a masked lane reads zero)."""
    padded = 1 << (trip - 1).bit_length()
    if not r.target.cheap_masked_stores or padded > r.target.lanes(f32) or bin(trip).count("1") < 2:
        return trip
    for stmt in loop.body:
        if isinstance(stmt, Store) and stmt.buffer in r.scratch:
            return trip
        for e in walk_expr(stmt.value):
            if isinstance(e, Load) and e.buffer in r.scratch:
                return trip
            if isinstance(e, Binary) and e.op in ("div", "rem") and not e.dtype.is_float \
                    and not isinstance(e.b, Const):
                return trip
    return padded


def vector_of(scalar: ir.Type, lanes: int) -> ir.VectorType:
    return ir.VectorType(scalar, lanes)


class LaneLoop:
    """Renders one vectorized loop through the kernel renderer ``r`` (its builder, values,
    buffers and scalar operations, which accept vectors as well as scalars)."""

    def __init__(self, r, loop: Loop):
        self.r = r
        self.b = r.b
        self.var = loop.var
        self.loop = loop
        self.start = self.lanes = 0               # the lanes of the chunk being rendered
        self.vector_names: set[str] = set()       # lets whose value differs from lane to lane
        self.strides: dict[str, int | None] = {}  # of those, integer lets: their step per lane
        self.deferred: dict[str, object] = {}    # of those, lets that read no memory: rendered when used
        self._dependent: dict[int, bool] = {}

    def render(self, body) -> None:
        """The loop's lanes in chunks of powers of two (49 lanes as 32 + 16 + 1): LLVM splits a
        power-of-two vector into whole registers, but scalarizes what does not fit one of
        an odd width such as <17 x float>, lane by lane, slower than the scalar loop.  A loop
        padded to more lanes (Loop.padded_to) is computed in as many, those from its stop on
        reading and writing only the scratch rows (every other load and store masked)."""
        first, trip = self.loop.start.value, constant_trip(self.loop)
        self.stop = first + trip
        lanes = self.loop.padded_to or padded_lanes(self.loop, trip, self.r)
        for width in (1 << bit for bit in reversed(range(lanes.bit_length())) if lanes & (1 << bit)):
            self.start, self.lanes = first, width
            self._render_chunk(body)
            first += width

    def _render_chunk(self, body) -> None:
        for stmt in body:
            if isinstance(stmt, Let):
                if self.dependent(stmt.value):
                    self.vector_names.add(stmt.name)
                    self.strides[stmt.name] = self.stride(stmt.value)
                    # Index arithmetic is rendered when read, as a vector or only its first lane
                    # (all a unit-stride access needs); a load is rendered here, before any
                    # later store of the chunk could change what it reads.
                    if any(isinstance(x, Load) for x in walk_expr(stmt.value)):
                        self.r.values[stmt.name] = self.vector(stmt.value)
                    else:
                        self.deferred[stmt.name] = stmt.value
                else:
                    self.r.values[stmt.name] = self.r.expr(stmt.value)
            else:
                self.store(stmt)
        for name in self.vector_names:           # lane values are not visible after the loop
            self.r.values.pop(name, None)
        self.vector_names.clear()
        self.strides.clear()
        self.deferred.clear()

    # -- which values vary across lanes, and how indices move ---------------------------
    def dependent(self, e) -> bool:
        key = id(e)
        if key not in self._dependent:
            self._dependent[key] = self._depends(e)
        return self._dependent[key]

    def _depends(self, e) -> bool:
        if isinstance(e, Var):
            return e.name == self.var
        if isinstance(e, Ref):
            return e.name in self.vector_names
        if isinstance(e, Load):
            return self.dependent(e.index) or (e.mask is not None and self.dependent(e.mask))
        if isinstance(e, (Unary, Cast)):
            return self.dependent(e.x)
        if isinstance(e, Binary):
            return self.dependent(e.a) or self.dependent(e.b)
        if isinstance(e, Select):
            return self.dependent(e.cond) or self.dependent(e.a) or self.dependent(e.b)
        return False

    def stride(self, e) -> int | None:
        """How far integer ``e`` moves from one lane to the next, if by a constant."""
        if not self.dependent(e):
            return 0
        if isinstance(e, Var):
            return 1
        if isinstance(e, Ref):
            return self.strides.get(e.name)
        if isinstance(e, Binary) and e.op in ("add", "sub"):
            a, b = self.stride(e.a), self.stride(e.b)
            if a is None or b is None:
                return None
            return a + b if e.op == "add" else a - b
        if isinstance(e, Binary) and e.op == "mul":
            if isinstance(e.b, Const):
                a = self.stride(e.a)
                return None if a is None else a * e.b.value
            if isinstance(e.a, Const):
                b = self.stride(e.b)
                return None if b is None else b * e.a.value
        return None

    # -- values ---------------------------------------------------------------------------
    def vector(self, e):
        """``e`` in every lane, as an LLVM vector."""
        if not self.dependent(e):
            return self.splat(self.r.expr(e))
        r = self.r
        if isinstance(e, Var):
            return ir.Constant(vector_of(I64, self.lanes), list(range(self.start, self.start + self.lanes)))
        if isinstance(e, Ref):
            if e.name not in r.values:
                r.values[e.name] = self.vector(self.deferred[e.name])
            return r.values[e.name]
        if isinstance(e, Load):
            return self.load(e)
        if isinstance(e, Unary):
            if e.op == "bitcast":
                return r.bitcast(self.vector(e.x), e.dtype)
            return r.unary(e.op, self.vector(e.x), e.x.dtype)
        if isinstance(e, Binary):
            return r.binary(e.op, self.vector(e.a), self.vector(e.b), e.a.dtype)
        if isinstance(e, Select):
            condition = self.vector(e.cond) if self.dependent(e.cond) else r.expr(e.cond)
            return self.b.select(condition, self.vector(e.a), self.vector(e.b))
        if isinstance(e, Cast):
            return r.cast(self.vector(e.x), e.x.dtype, e.dtype)
        raise TypeError(f"cannot render {e!r} in a vectorized loop")

    def splat(self, scalar, lanes: int | None = None):
        lanes = lanes or self.lanes
        type_ = vector_of(scalar.type, lanes)
        one = self.b.insert_element(ir.Constant(type_, ir.Undefined), scalar, ir.Constant(I32, 0))
        return self.b.shuffle_vector(one, ir.Constant(type_, ir.Undefined), ir.Constant(vector_of(I32, lanes), [0] * lanes))

    def lane(self, vector, i: int):
        return self.b.extract_element(vector, ir.Constant(I32, i))

    def first_lane(self, e):
        """Integer ``e`` in the chunk's first lane, as a scalar: a unit-stride access's address
        needs no vector of indices (which LLVM would fold away, after optimizing it)."""
        if not self.dependent(e):
            return self.r.expr(e)
        if isinstance(e, Var):
            return ir.Constant(I64, self.start)
        if isinstance(e, Ref):
            if e.name in self.deferred:
                return self.first_lane(self.deferred[e.name])
            return self.lane(self.r.values[e.name], 0)
        if isinstance(e, Binary) and e.op in ("add", "sub", "mul"):
            return self.r.binary(e.op, self.first_lane(e.a), self.first_lane(e.b), e.a.dtype)
        return self.lane(self.vector(e), 0)

    # -- memory -----------------------------------------------------------------------------
    def padding(self, buffer: str) -> list[bool] | None:
        """Which lanes of the chunk may touch ``buffer``, where some may not: the lanes a padded
        loop computes beyond its stop touch only scratch rows."""
        if self.start + self.lanes <= self.stop or buffer in self.r.scratch:
            return None
        return [self.start + k < self.stop for k in range(self.lanes)]

    def live_mask(self, live: list[bool]):
        return ir.Constant(vector_of(I1, self.lanes), [int(k) for k in live])

    def load(self, e: Load):
        b, r = self.b, self.r
        element = memory_type(e.dtype)
        type_ = vector_of(element, self.lanes)
        if self.stride(e.index) != 1:
            value = self.span_load(e)
            if value is not None:
                return value
        mask = None if e.mask is None else self.vector(e.mask)
        live = self.padding(e.buffer)
        if live is not None:
            mask = self.live_mask(live) if mask is None else b.and_(mask, self.live_mask(live))
        if self.stride(e.index) == 1:
            address = r.element_address(e.buffer, self.first_lane(e.index), e.dtype)
            if mask is None:
                value = b.load(address, typ=type_, align=e.dtype.itemsize)
            else:
                # Lanes outside the mask read nothing (llvm.masked.load): a row of a window
                # that hangs over the padding is still one vector load.
                value = self.masked_load(address, type_, mask, e.dtype.itemsize)
        else:
            index = self.vector(e.index)
            if mask is not None:                  # masked lanes read element 0, then take zero
                index = b.select(mask, index, ir.Constant(index.type, None))
            value = ir.Constant(type_, ir.Undefined)
            for i in range(self.lanes):
                scalar = b.load(r.element_address(e.buffer, self.lane(index, i), e.dtype), typ=element)
                value = b.insert_element(value, scalar, ir.Constant(I32, i))
            if mask is not None:
                value = b.select(mask, value, ir.Constant(type_, None))
        if e.dtype == bool_:
            return b.icmp_unsigned("!=", value, ir.Constant(value.type, [0] * self.lanes))
        return value

    def span_load(self, e: Load):
        """A load whose lanes read addresses a constant apart (a pooling window's stride-2 taps,
        a row of a strided or upsampled image) as one load of the span they cover, shuffled
        into the lanes; None where the offsets are not constants or spread too far."""
        separated = self.separated(e.index)
        if separated is None:
            return None
        conditions, live, varying = ([], [True] * self.lanes, []) if e.mask is None else self.mask_parts(e.mask)
        invariant, offsets = separated
        live = [a and b for a, b in zip(live, self.padding(e.buffer) or live)]
        read = [offset for offset, keep in zip(offsets, live) if keep]
        type_ = vector_of(memory_type(e.dtype), self.lanes)
        if not read:
            return ir.Constant(type_, None)
        low, span = min(read), max(read) - min(read) + 1
        if span > MAX_SPAN * self.lanes or (varying and len(set(read)) < len(read)):
            return None
        b, r = self.b, self.r
        # Every element of the span lies between two that some lane reads, so all are in the buffer
        # (where the lane-invariant part of the mask holds: elsewhere nothing is read).
        base = b.add(r.expr(invariant), ir.Constant(I64, low))
        address, wide_type = r.element_address(e.buffer, base, e.dtype), vector_of(type_.element, span)
        wide_mask = None
        if conditions:
            condition = r.expr(conditions[0])
            for more in conditions[1:]:
                condition = b.and_(condition, r.expr(more))
            wide_mask = self.splat(condition, span)
        if varying:
            # Each element of the span is read by one lane at most: it is read where that lane's
            # mask holds (a padded window row: the taps past either edge are not read).
            lane_mask = self.vector(varying[0])
            for more in varying[1:]:
                lane_mask = b.and_(lane_mask, self.vector(more))
            reader = {offset - low: k for k, (offset, keep) in enumerate(zip(offsets, live)) if keep}
            none_read = ir.Constant(vector_of(I1, self.lanes), None)
            spread = b.shuffle_vector(lane_mask, none_read, ir.Constant(
                vector_of(I32, span), [reader.get(j, self.lanes) for j in range(span)]))
            wide_mask = spread if wide_mask is None else b.and_(wide_mask, spread)
        if wide_mask is not None:
            wide = self.masked_load(address, wide_type, wide_mask, e.dtype.itemsize)
        else:
            wide = b.load(address, typ=wide_type, align=e.dtype.itemsize)
        picks = [offset - low if keep else 0 for offset, keep in zip(offsets, live)]
        value = b.shuffle_vector(wide, ir.Constant(wide.type, ir.Undefined), ir.Constant(vector_of(I32, self.lanes), picks))
        if not all(live):
            value = b.select(ir.Constant(vector_of(I1, self.lanes), [int(k) for k in live]),
                             value, ir.Constant(type_, None))
        if e.dtype == bool_:
            return b.icmp_unsigned("!=", value, ir.Constant(type_, None))
        return value

    def masked_load(self, address, type_: ir.VectorType, mask, align: int):
        """A vector of ``type_`` read from ``address`` in the lanes ``mask`` sets, zero in the others."""
        intrinsic = declare_intrinsic(self.r.module, "llvm.masked.load", [type_, PTR],
                                      ir.FunctionType(type_, [PTR, I32, mask.type, type_]))
        return self.b.call(intrinsic, [address, ir.Constant(I32, align), mask, ir.Constant(type_, None)])

    def mask_parts(self, mask):
        """A mask as the conjunction of lane-invariant conditions, a constant per lane, and the
        terms that are neither (a padded window's column test, its tap not a constant)."""
        terms, stack = [], [mask]
        while stack:
            term = stack.pop()
            if isinstance(term, Binary) and term.op == "and" and term.dtype == bool_:
                stack += [term.a, term.b]
            else:
                terms.append(term)
        conditions, live, varying = [], [True] * self.lanes, []
        for term in terms:
            if not self.dependent(term):
                conditions.append(term)
                continue
            values = self.lane_values(term)
            if values is None:
                varying.append(term)
            else:
                live = [a and bool(v) for a, v in zip(live, values)]
        return conditions, live, varying

    def separated(self, e):
        """Integer ``e`` as a lane-invariant expression plus a constant per lane, where it is."""
        if not self.dependent(e):
            return e, [0] * self.lanes
        if isinstance(e, Ref) and e.name in self.deferred:
            return self.separated(self.deferred[e.name])
        values = self.lane_values(e)
        if values is not None:
            return Const(0, e.dtype), values
        if isinstance(e, Binary) and e.op in ("add", "sub"):
            a, b = self.separated(e.a), self.separated(e.b)
            if a is None or b is None:
                return None
            sign = 1 if e.op == "add" else -1
            return Binary(e.op, a[0], b[0], e.dtype), [x + sign * y for x, y in zip(a[1], b[1])]
        if isinstance(e, Binary) and e.op == "mul" and isinstance(e.b, Const):
            a = self.separated(e.a)
            return None if a is None else (Binary("mul", a[0], e.b, e.dtype), [x * e.b.value for x in a[1]])
        return None

    def lane_values(self, e) -> list | None:
        """``e`` in each lane of the chunk, where it depends on nothing but the lane and constants."""
        values = [self._constant_in_lane(e, self.start + k) for k in range(self.lanes)]
        return None if any(v is None for v in values) else values

    def _constant_in_lane(self, e, lane: int):
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Var) and e.name == self.var:
            return lane
        if isinstance(e, (Var, Ref)) and isinstance(self.r.values.get(e.name), ir.Constant):
            return self.r.values[e.name].constant         # an unrolled loop's variable
        if isinstance(e, Var):
            return None
        if isinstance(e, Ref):
            return self._constant_in_lane(self.deferred[e.name], lane) if e.name in self.deferred else None
        if isinstance(e, Binary):
            a = self._constant_in_lane(e.a, lane)
            b = None if a is None else self._constant_in_lane(e.b, lane)
            if b is None or e.dtype.is_float or e.a.dtype.is_float:
                return None
            if e.op in _COMPARISONS:
                return _COMPARISONS[e.op](a, b)
            if e.op in ("and", "or"):
                return (a and b if e.op == "and" else a or b) if isinstance(a, bool) else None
            return fold_integer(e.op, a, b)
        if isinstance(e, Unary) and e.op == "not":
            x = self._constant_in_lane(e.x, lane)
            return None if x is None else not x
        return None

    def store(self, stmt: Store) -> None:
        b, r = self.b, self.r
        r.fast = ("reassoc", "contract") if stmt.reassociable else ()
        try:
            value = self.vector(stmt.value)
        finally:
            r.fast = ()
        if stmt.value.dtype == bool_:
            value = b.zext(value, vector_of(I8, self.lanes))
        live = self.padding(stmt.buffer)
        if self.stride(stmt.index) == 1:
            address = r.element_address(stmt.buffer, self.first_lane(stmt.index), stmt.value.dtype)
            if live is None:
                b.store(value, address, align=stmt.value.dtype.itemsize)
            else:
                intrinsic = declare_intrinsic(r.module, "llvm.masked.store", [value.type, PTR],
                                              ir.FunctionType(ir.VoidType(), [value.type, PTR, I32, vector_of(I1, self.lanes)]))
                b.call(intrinsic, [value, address, ir.Constant(I32, stmt.value.dtype.itemsize), self.live_mask(live)])
            return
        index = self.vector(stmt.index)
        for i in range(self.lanes):
            if live is None or live[i]:
                b.store(self.lane(value, i), r.element_address(stmt.buffer, self.lane(index, i), stmt.value.dtype))
