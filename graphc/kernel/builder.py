"""Emitting one kernel: blocks of statements, scoped lets, and each value computed once.

``KernelBuilder`` keeps a stack of open blocks (the kernel's body, then each
loop opened inside it).  A lowering asks ``value(node, index)`` for the value
of a graph node at an element; the builder returns an expression, emitting a
``Let`` for it into the current block the first time and a reference to that
let every later time in the same block or a block inside it.  So each value
of a fused body is computed once per element, and a value computed inside a
loop (a reduction's prologue) is never used after the loop closes.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable

from ..ir.dtypes import DType, i64
from ..ir.graph import Node
from . import expr as E
from .indices import lanes_far_apart, loop_stride
from .intervals import bounds, within
from .ir import Accumulator, Assign, Local, Check, Const, Expr, Let, Load, Loop, OutOfRange, Ref, Stmt, Store, Var


@dataclass(frozen=True)
class Tile:
    """A block of outputs computed together: ``rows`` (their variable ``row``, None for one
    row) by ``lanes`` (variable ``lane``), the lanes neighbouring elements of the output; its
    rows ``padded`` to that many lanes where a backend may compute more than there are
    (Loop.padded_to), its scratch rows that long."""
    row: str | None
    rows: int
    lane: str
    lanes: int
    padded: int | None = None
    # A tile of dot products: its rows are the outputs (unrolled), its lanes neighbouring terms
    # of each one's sum, added up when the sum is done (``LoweringContext.reduce``).
    sums_lanes: bool = False
    # A tall tile (a product's whole column of rows): its sum runs ``sum_block`` terms at a time,
    # each block of terms for ``register_rows`` rows after another (LoweringContext._sum_in_blocks).
    register_rows: int | None = None
    sum_block: int | None = None

    @property
    def row_length(self) -> int:
        """The length of a row of the tile's scratch arrays."""
        return self.padded or self.lanes

    def loops(self) -> list[tuple[str, int]]:
        """The tile's loop variables and trip counts, outermost first."""
        return ([(self.row, self.rows)] if self.row else []) + [(self.lane, self.lanes)]

    def position(self) -> Expr:
        """This element's place in a scratch tile, row after row."""
        return E.add(E.mul(Var(self.row), self.row_length), Var(self.lane)) if self.row else Var(self.lane)

    def wrap(self, body: tuple) -> tuple:
        """``body`` in the loops over the tile's outputs (a tile of dot products: its rows only).
        A tile stored transposed (each store's rows neighbours in memory, its lanes far apart)
        is stored lane by lane, each lane's rows as one vector: stored row by row, a tile of 32
        lanes whose rows are 4 KiB apart writes 32 lines of one cache set for every row (a 12-way
        L1 keeps 12), and the DCGAN's 128-channel weight gradient took 2.2 ms, where lane by lane
        it takes 1.6."""
        if self.row and not self.sums_lanes and _stored_transposed(body, self.row, self.lane):
            rows = Loop(self.row, Const(0, i64), Const(self.rows, i64), body, "vectorized")
            return (Loop(self.lane, Const(0, i64), Const(self.lanes, i64), (rows,), "serial"),)
        if not self.sums_lanes:
            body = (Loop(self.lane, Const(0, i64), Const(self.lanes, i64), body, "vectorized", self.padded),)
        if self.row:
            body = (Loop(self.row, Const(0, i64), Const(self.rows, i64), body, "unrolled"),)
        return body


def _stored_transposed(body: tuple, row: str, lane: str) -> bool:
    """Whether every store of a tile's ``body`` writes its rows side by side and its lanes far
    apart (a product stored transposed, as a weight gradient is)."""
    lets = {stmt.name for stmt in body if isinstance(stmt, Let)}
    stores = [stmt for stmt in body if isinstance(stmt, Store)]
    if not stores or len(stores) + len(lets) != len(body):
        return False
    return all(loop_stride(store.index, row, lets) == 1 and lanes_far_apart(store.index, lane, lets)
               for store in stores)


@dataclass(frozen=True)
class Index:
    """An element of a tensor of ``shape``: one coordinate per axis, and, where known
    without arithmetic (a kernel looping over its elements flat), the flat position."""
    shape: tuple[int, ...]
    dims: tuple[Expr, ...]
    flat: Expr | None = None
    # Axes whose coordinate the kernel's loops ran over in parts (see OpDef.loop_axes):
    # (axis, sizes, part coordinates), the coordinate being their row-major combination.
    parts: tuple[tuple[int, tuple[int, ...], tuple[Expr, ...]], ...] = field(default=(), compare=False)

    def linear(self) -> Expr:
        return self.flat if self.flat is not None else E.linear(self.dims, self.shape)

    def key(self) -> tuple:
        return (self.shape, self.dims if self.flat is None else self.flat)

    def broadcast_to(self, shape: tuple[int, ...]) -> "Index":
        """The element of a tensor of ``shape`` that broadcasting reads at this element."""
        if tuple(shape) == self.shape:
            return self
        extra = len(self.shape) - len(shape)
        dims = tuple(E.index(0) if size == 1 else dim
                     for dim, size in zip(self.dims[extra:], shape))
        return Index(tuple(shape), dims)

    def split(self, axis: int, sizes: tuple[int, ...]) -> tuple[Expr, ...]:
        """The coordinate on ``axis`` as coordinates over ``sizes`` (row-major): the loops' own
        variables where the kernel looped over the axis in these parts, else divided out."""
        for part_axis, part_sizes, coordinates in self.parts:
            if part_axis == axis and part_sizes == tuple(sizes):
                return coordinates
        return E.unflatten(self.dims[axis], sizes)

    def with_dim(self, axis: int, value: Expr) -> "Index":
        return Index(self.shape, self.dims[:axis] + (value,) + self.dims[axis + 1:])

    @staticmethod
    def flat_over(shape: tuple[int, ...], position: Expr) -> "Index":
        if not shape:                         # a scalar's one element, whatever the position
            return Index((), (), E.index(0))
        return Index(shape, E.unflatten(position, shape), position)

    @staticmethod
    def of(shape: tuple[int, ...], dims) -> "Index":
        return Index(tuple(shape), tuple(E.index(d) for d in dims))


class KernelBuilder:
    """The statements of one kernel, built block by block."""

    def __init__(self):
        self._blocks: list[list[Stmt]] = [[]]
        self._scopes: list[dict] = [{}]
        self._names = 0
        self.ranges: dict[str, tuple] = {}       # each open loop's variable: the values it takes
        self.locals: set[str] = set()
        # While a tile of outputs is computed lane by lane (see LoweringContext.reduce).
        self.tile: Tile | None = None

    # -- names and blocks ----------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def emit(self, stmt: Stmt) -> None:
        self._blocks[-1].append(stmt)

    @property
    def body(self) -> tuple[Stmt, ...]:
        assert len(self._blocks) == 1, "a loop is still open"
        return tuple(self._blocks[0])

    @contextmanager
    def loop(self, start: "Expr | int", stop: "Expr | int", kind: str = "serial", prefix: str = "i",
             var: str | None = None, padded_to: int | None = None):
        """Open a loop; yields its variable.  Statements emitted inside go into its body."""
        var = var or self.fresh(prefix)
        start, stop = E.index(start), E.index(stop)
        self._blocks.append([])
        self._scopes.append({})
        enclosing = self.ranges.get(var)        # a lane loop reopened inside its row
        self.ranges[var] = (bounds(start, self.ranges)[0], bounds(stop, self.ranges)[1] - 1)
        try:
            yield Var(var)
        finally:
            body = self._blocks.pop()
            self._scopes.pop()
            if enclosing is None:
                del self.ranges[var]
            else:
                self.ranges[var] = enclosing
        self.emit(Loop(var, start, stop, tuple(body), kind, padded_to))

    # -- values ----------------------------------------------------------------------------
    def bind(self, value: Expr, prefix: str = "v") -> Expr:
        """``value`` as a let (constants, plain references and reads of scratch arrays stay inline)."""
        if isinstance(value, (Const, Var, Ref)) or (isinstance(value, Load) and value.buffer in self.locals):
            return value
        name = self.fresh(prefix)
        self.emit(Let(name, value))
        return Ref(name, value.dtype)

    def remembered(self, key, compute: Callable[[], Expr], bind: bool = True):
        """The value cached under ``key`` in this block or an enclosing one, else ``compute()``
        (bound to a let unless ``bind`` is false) cached in the current block."""
        for scope in reversed(self._scopes):
            if key in scope:
                return scope[key]
        value = compute()
        if bind:
            value = self.bind(value)
        self._scopes[-1][key] = value
        return value

    def accumulator(self, init: Expr, prefix: str = "acc", reassociable: bool = False) -> str:
        name = self.fresh(prefix)
        self.emit(Accumulator(name, init, reassociable))
        return name

    def assign(self, name: str, value: Expr) -> None:
        self.emit(Assign(name, value))

    def local(self, dtype: DType, size: int) -> str:
        name = self.fresh("row")
        self.locals.add(name)
        self.emit(Local(name, dtype, size))
        return name

    # -- tiles of outputs computed lane by lane ------------------------------------------
    @contextmanager
    def tiled(self, rows: int, lanes: int, padded: int | None = None, register_rows: int | None = None,
              sum_block: int | None = None):
        """Compute a tile of ``rows`` x ``lanes`` outputs: yields the row variable (None for one
        row) and the lane variable.  What is emitted inside goes into loops over the tile's rows
        (unrolled) and lanes (vectorized, ``padded`` to that many: see Loop.padded_to), opened
        when the block closes; a reduction emitted meanwhile (``LoweringContext.reduce``) runs
        before those loops, over the whole tile at once, its accumulators held in a scratch tile
        (a tall tile's in blocks of ``register_rows`` rows and ``sum_block`` terms: see Tile)."""
        tile = Tile(self.fresh("row") if rows > 1 else None, rows, self.fresh("lane"), lanes, padded,
                    register_rows=register_rows, sum_block=sum_block)
        with self._tile_block(tile, tile.loops()):
            yield (Var(tile.row) if tile.row else None), Var(tile.lane)

    @contextmanager
    def dot_tiled(self, rows: int, lanes: int):
        """Compute ``rows`` outputs that are sums (dot products), each in ``lanes`` partial sums of
        neighbouring terms: yields the row variable (None for one row).  What is emitted inside
        goes into a loop over the rows (unrolled); a sum emitted meanwhile (``LoweringContext.reduce``)
        runs before it, for every row at once, its innermost loop in vectors of ``lanes`` terms."""
        assert lanes & (lanes - 1) == 0, f"the partial sums of a dot product are added in halves, not {lanes}"
        tile = Tile(self.fresh("row") if rows > 1 else None, rows, self.fresh("lane"), lanes, sums_lanes=True)
        with self._tile_block(tile, tile.loops()[:-1]):
            yield Var(tile.row) if tile.row else None

    @contextmanager
    def _tile_block(self, tile: "Tile", loops: list[tuple[str, int]]):
        """The block of ``tile``'s outputs, its ``loops`` in scope; wrapped in them when it closes."""
        self.tile = tile
        for var, size in loops:
            self.ranges[var] = (0, size - 1)
        self._blocks.append([])
        self._scopes.append({})
        try:
            yield
        finally:
            body = self._blocks.pop()
            self._scopes.pop()
            self.tile = None
            for var, _ in loops:
                del self.ranges[var]
        for stmt in tile.wrap(tuple(body)):
            self.emit(stmt)

    @contextmanager
    def tile_loops(self, tile: "Tile", lanes: int | None = None, rows: tuple[int, int] | None = None):
        """Open the loops over ``tile``'s rows and lanes again (inside a reduction, say); over its
        first ``lanes`` lanes only, and its ``rows`` (first, stop) only, where given."""
        with ExitStack() as stack:
            for var, size in tile.loops():
                if var == tile.lane:
                    stack.enter_context(self.loop(0, lanes or size, kind="vectorized", var=var, padded_to=tile.padded))
                else:
                    stack.enter_context(self.loop(*(rows or (0, size)), kind="unrolled", var=var))
            yield

    @contextmanager
    def at_top(self):
        """Emit into the kernel's outermost block, before its loops: for values that are the same
        in every iteration (rank-0 work such as an optimizer's bias corrections), which the
        backend could not hoist itself when it cannot prove the scalars they read are not
        overwritten by the kernel's stores."""
        blocks, scopes, tile = self._blocks[1:], self._scopes[1:], self.tile
        del self._blocks[1:], self._scopes[1:]
        self.tile = None
        try:
            yield
        finally:
            self._blocks.extend(blocks)
            self._scopes.extend(scopes)
            self.tile = tile

    @property
    def nested(self) -> bool:
        return len(self._blocks) > 1

    @contextmanager
    def before_tile(self):
        """Emit into the block that runs before the tile's loops (their pending block set aside)."""
        block, scope = self._blocks.pop(), self._scopes.pop()
        tile = self.tile
        self.tile = None
        try:
            yield tile
        finally:
            self.tile = tile
            self._blocks.append(block)
            self._scopes.append(scope)


class LoweringContext:
    """What an op's lowering sees while its kernel is built.

    ``value(node, index)`` is the value of any node of the kernel's body (or of
    an operand stored in a buffer) at an element; ``load`` reads a buffer;
    ``check`` guards a data-dependent index.  ``builder`` opens loops and
    accumulators for reductions and contractions.
    """

    def __init__(self, builder: KernelBuilder, buffer_of: dict[Node, str], errors: list[OutOfRange],
                 lowering_of: Callable[[Node], Callable]):
        self.builder = builder
        self._buffer_of = buffer_of
        self._errors = errors
        self._lowering_of = lowering_of
        self._aliases: dict[Node, Node] = {}
        self._pinned: dict[Node, Expr] = {}

    def value(self, node: Node, index: Index) -> Expr:
        """``node``'s value at ``index``: loaded if the kernel reads it from a buffer, else
        computed by its op's lowering (once per element and block)."""
        assert index.shape == node.shape, f"%{node.name} {node.shape} read at an index of shape {index.shape}"
        node = self._aliases.get(node, node)
        if node in self._pinned:
            return self._pinned[node]
        if not index.shape and self.builder.nested:
            with self.builder.at_top():
                return self.value(node, index)
        if node in self._buffer_of:
            buffer = self._buffer_of[node]
            return self.builder.remembered(("load", buffer, index.key()), lambda: self.load(buffer, node.dtype, index))
        if node.op == "full":
            return E.const(node.attrs["value"], node.dtype)
        return self.builder.remembered((node, index.key()), lambda: self._lowering_of(node)(self, node, index))

    def masked_value(self, node: Node, index: Index, mask: Expr) -> Expr | None:
        """``node`` at ``index`` where ``mask`` holds and zero elsewhere, as one masked load of the
        buffer holding it (``index`` need be in range only where ``mask`` holds); None when the
        kernel computes ``node`` rather than reading it."""
        node = self._aliases.get(node, node)
        if node in self._pinned or node not in self._buffer_of:
            return None
        buffer = self._buffer_of[node]
        return self.builder.remembered(("load", buffer, index.key(), mask),
                                       lambda: Load(buffer, index.linear(), node.dtype, mask))

    @contextmanager
    def pinned(self, node: Node, value: Expr):
        """Within the block: ``node``'s value, at whatever index it is asked for, is ``value`` (the
        one element of it that a kernel's outputs at the current element read)."""
        self._pinned[node] = value
        try:
            yield
        finally:
            del self._pinned[node]

    def inline(self, body, operands) -> None:
        """Read ``body``'s inputs as ``operands`` (a fused kernel's body, lowered in place)."""
        for body_input, operand in zip(body.inputs, operands):
            self._aliases[body_input] = self._aliases.get(operand, operand)

    def known_inside(self, value: Expr, size: int) -> bool:
        """Whether ``value`` is in [0, size) for every iteration of the loops around it."""
        return within(value, size, self.builder.ranges)

    def shared(self, key, compute: Callable[[], object]):
        """Values several nodes share (a pooling window's maximum and its argmax), computed once."""
        return self.builder.remembered(key, compute, bind=False)

    def buffer(self, node: Node) -> str:
        """The buffer holding ``node`` (a stored constant's data)."""
        return self._buffer_of[self._aliases.get(node, node)]

    def load(self, buffer: str, dtype: DType, index: Index) -> Load:
        return Load(buffer, index.linear(), dtype)

    def check(self, in_range: Expr, value: Expr, op: str, what: str, size: int, node: Node, detail: str = "") -> None:
        """Fail the step, reporting ``value``, where ``in_range`` does not hold."""
        if isinstance(in_range, Const) and in_range.value:
            return
        self._errors.append(OutOfRange(op, what, size, detail, node.name, str(node.loc) if node.loc else None))
        self.builder.emit(Check(in_range, len(self._errors) - 1, E.cast(value, i64)))

    # -- reductions -----------------------------------------------------------------------
    def reduce(self, init: Expr, extents: list["int | tuple[Expr, Expr]"],
               update: Callable[[Expr, list[Var]], Expr], sums: bool = False, strided: bool = False) -> Expr:
        """Fold ``update(acc, loop variables)`` over nested serial loops, one per extent
        (a size, or a (start, stop) pair), into an accumulator starting at ``init``.

        ``sums``: the fold is a sum whose terms a backend may add in another order.
        While a tile of outputs is computed lane by lane, the fold runs before the tile's
        loops for all of its elements at once: an accumulator per element in a scratch
        tile, the tile's rows and lanes innermost (so a backend keeps the tile in registers
        and vectorizes across outputs), and the result is this element of the tile.
        ``strided``: the fold runs over a window whose taps step more than one element per
        output (a stride-2 pooling); in a tile its small loops are unrolled (MAX_UNROLLED_TAPS)."""
        if self.builder.tile is not None:
            return self._reduce_tile(init, extents, update, sums, strided)
        acc = self.builder.accumulator(init, reassociable=sums)
        current = Ref(acc, init.dtype)

        def nest(depth: int, variables: list[Var]):
            if depth == len(extents):
                self.builder.assign(acc, update(current, variables))
                return
            extent = extents[depth]
            start, stop = extent if isinstance(extent, tuple) else (0, extent)
            with self.builder.loop(start, stop, prefix="r") as var:
                nest(depth + 1, variables + [var])

        nest(0, [])
        return current

    def _reduce_tile(self, init, extents, update, sums: bool, strided: bool) -> Expr:
        builder = self.builder
        if builder.tile.sums_lanes:
            return self._reduce_lanes(init, extents, update)
        with builder.before_tile() as tile:
            scratch = builder.local(init.dtype, tile.rows * tile.row_length)
            with builder.tile_loops(tile):
                builder.emit(Store(scratch, tile.position(), init))
            if tile.register_rows and len(extents) == 1 and isinstance(extents[0], int) and not strided:
                self._sum_in_blocks(tile, scratch, extents[0], init.dtype, update, sums)
                return Load(scratch, tile.position(), init.dtype)
            unrolled = _unrolled_taps(extents) if strided else len(extents)

            def nest(depth: int, variables: list[Var]):
                if depth == len(extents):
                    with builder.tile_loops(tile):
                        current = Load(scratch, tile.position(), init.dtype)
                        builder.emit(Store(scratch, tile.position(), update(current, variables), reassociable=sums))
                    return
                extent = extents[depth]
                start, stop = extent if isinstance(extent, tuple) else (0, extent)
                kind = "unrolled" if depth >= unrolled else "serial"
                with builder.loop(start, stop, kind=kind, prefix="r") as var:
                    nest(depth + 1, variables + [var])

            nest(0, [])
        return Load(scratch, tile.position(), init.dtype)

    def _sum_in_blocks(self, tile: Tile, scratch: str, terms: int, dtype, update, sums: bool) -> None:
        """A tall tile's sums over ``terms``: ``tile.sum_block`` terms at a time, for each block of
        ``tile.register_rows`` rows after another (their accumulators in registers while the block
        runs, the rest of the tile's in the scratch tile).  Each block of terms of the right operand
        (a panel: sum_block x lanes) is read from memory once and then from cache for every block
        of rows, where a tile per block of rows reads the whole panel of its column each (the DCGAN
        generator's 6272 -> 1024 input gradient: a 784 KiB panel, three times over)."""
        builder = self.builder
        step = tile.sum_block
        with builder.loop(0, -(-terms // step), prefix="r") as block:
            first = E.mul(block, step)
            stop = E.minimum(E.add(first, step), terms) if terms % step else E.add(first, step)
            for top in range(0, tile.rows, tile.register_rows):
                with builder.loop(first, stop, prefix="r") as term:
                    with builder.tile_loops(tile, rows=(top, min(top + tile.register_rows, tile.rows))):
                        current = Load(scratch, tile.position(), dtype)
                        builder.emit(Store(scratch, tile.position(), update(current, [term]), reassociable=sums))

    def _reduce_lanes(self, init, extents, update) -> Expr:
        """A sum over ``extents`` for each row of a tile of dot products (KernelBuilder.dot_tiled):
        the last extent in vectors of the tile's lanes (then the terms left over), every row's
        partial sums in a scratch row of their own, added up at the end."""
        builder = self.builder
        *outer, last = extents
        with builder.before_tile() as tile:
            scratch = builder.local(init.dtype, tile.rows * tile.lanes)
            with builder.tile_loops(tile):
                builder.emit(Store(scratch, tile.position(), init))
            whole, rest = divmod(last, tile.lanes)

            def terms(variables: list[Var], first: Expr, count: int):
                with builder.tile_loops(tile, count):
                    current = Load(scratch, tile.position(), init.dtype)
                    term = E.add(first, Var(tile.lane))
                    builder.emit(Store(scratch, tile.position(), update(current, variables + [term]), reassociable=True))

            def nest(depth: int, variables: list[Var]):
                if depth == len(outer):
                    if whole:
                        with builder.loop(0, whole, prefix="r") as block:
                            terms(variables, E.mul(block, tile.lanes), tile.lanes)
                    if rest:
                        terms(variables, E.index(whole * tile.lanes), rest)
                    return
                with builder.loop(0, outer[depth], prefix="r") as var:
                    nest(depth + 1, variables + [var])
            nest(0, [])
        # The partial sums added up in halves (16 -> 8 -> 4 -> 2 -> 1), each step one vector
        # addition of a row's upper half to its lower: a backend keeps the row in a register.
        first = E.mul(Var(tile.row), tile.lanes) if tile.row else E.index(0)
        half = tile.lanes // 2
        while half:
            with builder.loop(0, half, kind="vectorized", prefix="l") as lane:
                low, high = E.add(first, lane), E.add(first, E.add(lane, half))
                builder.emit(Store(scratch, low, E.add(Load(scratch, low, init.dtype), Load(scratch, high, init.dtype))))
            half //= 2
        return Load(scratch, first, init.dtype)


def store(builder: KernelBuilder, buffer: str, index: Index, value: Expr) -> None:
    builder.emit(Store(buffer, index.linear(), value))


# A strided window's reduction loops in a tile, innermost first, are unrolled while they make
# at most this many iterations together: each tap's addresses are then constants apart from
# lane to lane, so a strided window row is one load and a shuffle.  (At stride 1 a row of taps
# is a plain vector load already, and unrolling only makes the code longer to compile.)
MAX_UNROLLED_TAPS = 25


def _unrolled_taps(extents) -> int:
    """The depth from which the loops over ``extents`` are unrolled (len(extents): none)."""
    depth, iterations = len(extents), 1
    while depth > 0 and isinstance(extents[depth - 1], int) and iterations * extents[depth - 1] <= MAX_UNROLLED_TAPS:
        depth -= 1
        iterations *= extents[depth]
    return depth
