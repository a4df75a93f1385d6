"""Lowering a planned graph to a kernel-IR Program: one kernel per kernel node.

Every kernel loops over the elements of its outputs (all of one shape) and
stores, at each element, the value its op's lowering computes there
(``OpDef.lower``); a fused kernel's body is lowered in place, so its
intermediates never reach memory.  Reductions, contractions and windows open
their own loops inside, each output element accumulated in a scalar and
stored once, whole: the contract of the memory plan's in-place buffers.

Buffers come from the memory plan: each stored value at its arena offset or
in the storage of the state it is written back into; graph inputs and stored
constants are buffers of their own.  Write-back values the plan could not
compute into their state's storage are copied there after the last kernel.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import GraphcError
from ..ir.graph import Graph, Node
from ..ops.fused import kernel_outputs
from ..ops.linalg import computes_dot_products
from ..ops.registry import get_op
from ..timing import phase
from . import expr as E
from .builder import Index, KernelBuilder, LoweringContext, store
from .ir import Buffer, Copy, Kernel, OutOfRange, Program
from .indices import simplify_indices
from .schedule import default_schedule
from .target import AVX2, VectorTarget

# Ops whose kernels can loop over the flat position of their elements: each reads its
# operands at the element it writes (or at a scalar), so no coordinates are needed.
_FLAT_FAMILIES = ("elementwise", "source")


def lower_program(graph: Graph, plan, schedule: bool = True, target: VectorTarget = AVX2) -> Program:
    """The kernel-IR program running ``graph`` with the buffers placed by ``plan`` (a MemoryPlan),
    each kernel given its default schedule (unless ``schedule`` is false), its register tiles
    shaped for ``target``'s vector registers."""
    buffers: dict[str, Buffer] = {}
    buffer_of: dict[Node, str] = {}
    for node in graph.inputs:
        buffers[node.name] = Buffer(node.name, node.dtype, node.shape, "input", source=node.name)
        buffer_of[node] = node.name
    types = {node.name: node.type for node in graph.nodes}
    for slot in plan.buffers:
        node_type = types[slot.name]
        if slot.into_state:
            buffers[slot.name] = Buffer(slot.name, node_type.dtype, node_type.shape, "state", source=slot.into_state)
        else:
            buffers[slot.name] = Buffer(slot.name, node_type.dtype, node_type.shape, "arena", offset=slot.offset)

    errors: list[OutOfRange] = []
    kernels = []
    for node, outputs in kernel_outputs(graph).items():
        operands = {}
        for operand in dict.fromkeys(node.inputs):
            operands[operand] = _operand_buffer(operand, buffers, buffer_of)
        if node.op == "constant":
            operands[node] = _constant_buffer(node, node.attrs["value"], buffers)
        kernel = simplify_indices(_lower_kernel(f"k{len(kernels)}_{_identifier(node.name)}", node, outputs,
                                                operands, [o.name for o in outputs], errors, target))
        if schedule:
            with phase("scheduling"):
                kernel = default_schedule(kernel)
        kernels.append(kernel)
        for output in outputs:
            buffer_of[output] = output.name

    outputs = [_result_buffer(node, buffers, buffer_of) for node in graph.outputs]
    copies = []
    for target, value in graph.writes:
        source = _result_buffer(value, buffers, buffer_of)
        computed_in_place = buffers[source].place == "state" and buffers[source].source == target.name
        if not computed_in_place:
            copies.append(Copy(source, target.name))
    return Program(graph.name, buffers, kernels, plan.arena_bytes, [n.name for n in graph.inputs],
                   outputs, [target.name for target, _ in graph.writes], copies, errors)


def _operand_buffer(operand: Node, buffers: dict[str, Buffer], buffer_of: dict[Node, str]) -> str:
    if operand in buffer_of:
        return buffer_of[operand]
    if operand.op == "full":                  # a scalar constant: inlined by the lowering
        return None
    raise GraphcError(f"lowering: %{operand.name} is read before any kernel stores it")


def _constant_buffer(node: Node, value: np.ndarray, buffers: dict[str, Buffer]) -> str:
    name = f"{node.name}.data"
    buffers[name] = Buffer(name, node.dtype, node.shape, "constant", data=np.array(value, order="C"))
    return name


def _result_buffer(node: Node, buffers: dict[str, Buffer], buffer_of: dict[Node, str]) -> str:
    """The buffer holding a returned or written-back value (a scalar constant gets one)."""
    if node in buffer_of:
        return buffer_of[node]
    return _constant_buffer(node, np.full(node.shape, node.attrs["value"], node.dtype.numpy), buffers)


def _identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _lower_kernel(name: str, node: Node, outputs: list[Node], operands: dict[Node, str],
                  stored: list[str], errors: list[OutOfRange], target: VectorTarget) -> Kernel:
    builder = KernelBuilder()
    ctx = LoweringContext(builder, {n: b for n, b in operands.items() if b is not None}, errors,
                          lambda n: get_op(n.op).lower)
    shape = outputs[0].shape
    if _is_flat(node, shape):
        with builder.loop(0, int(np.prod(shape, dtype=np.int64))) as position:
            _store_outputs(ctx, outputs, stored, Index.flat_over(shape, position))
    elif (split := _loop_axes(node, shape)) is not None:
        anchor, parts, path = split
        sizes = [size for part in parts for size in part]
        _nest(ctx, sizes, [], None, lambda index: _store_moved(
            ctx, node, outputs, stored, anchor, path, _joined(index, anchor.shape, parts)))
    elif (tiling := _tiling(node, shape, target)) is not None:
        anchor, path, order = tiling.anchor, tiling.path, tiling.order
        store_at = lambda index: _store_moved(ctx, node, outputs, stored, anchor, path, _unpermuted(index, order))
        if tiling.dot_products:
            _dot_blocks(ctx, anchor.shape, tiling.tile, target.lanes(anchor.dtype), store_at)
        else:
            _nest(ctx, [anchor.shape[axis] for axis in order], [], tiling.tile, store_at,
                  tiling.columns_outer, target.lanes(anchor.dtype), tiling.sum_block)
    else:
        _nest(ctx, shape, [], None, lambda index: _store_outputs(ctx, outputs, stored, index))
    inputs = tuple(dict.fromkeys(b for b in operands.values() if b is not None))
    return Kernel(name, node.name, _describe(node), builder.body, inputs, tuple(stored),
                  str(node.loc) if node.loc else None)


def _nest(ctx, shape, dims, tile: tuple[int, int] | None, store_at: Callable[[Index], None],
          columns_outer: bool = False, vector: int = 1, sum_block: int | None = None):
    """Loops over the elements of ``shape``, calling ``store_at`` at each; with a ``tile`` (rows,
    lanes), the last axis (and the one before it, where rows > 1) in tiles computed lane by lane
    (in vectors of ``vector`` lanes), the tiles of a column outermost where ``columns_outer`` (whole
    column tiles, the rows left over a last block in each column; with a ``sum_block``, one tall
    tile per column, its rows in register blocks of ``rows``: see _sum_block)."""
    if len(dims) == len(shape):
        store_at(_element(shape, dims))
        return
    if tile is not None and tile[0] > 1 and len(dims) == len(shape) - 2:
        rows, lanes = tile
        blocks, column_tiles = shape[-2] // rows, shape[-1] // lanes
        if sum_block:
            with ctx.builder.loop(0, column_tiles) as column_tile:
                _tile(ctx, shape, dims, E.index(0), E.mul(column_tile, lanes), shape[-2], lanes, vector, store_at,
                      register_rows=rows, sum_block=sum_block)
            return
        if columns_outer:
            # Each column tile's panel of the right operand (K x lanes) serves every block of
            # rows while it is in cache: the right operand is read once, not once per block.
            with ctx.builder.loop(0, column_tiles) as column_tile:
                with ctx.builder.loop(0, blocks) as block:
                    _tile(ctx, shape, dims, E.mul(block, rows), E.mul(column_tile, lanes), rows, lanes, vector, store_at)
                if shape[-2] % rows:
                    _tile(ctx, shape, dims, E.index(blocks * rows), E.mul(column_tile, lanes), shape[-2] % rows,
                          lanes, vector, store_at)
            return
        with ctx.builder.loop(0, blocks) as block:
            _column_tiles(ctx, shape, dims, E.mul(block, rows), tile, vector, store_at)
        return
    if tile is not None and tile[0] == 1 and len(dims) == len(shape) - 1:
        _column_tiles(ctx, shape, dims, None, tile, vector, store_at)
        return
    with ctx.builder.loop(0, shape[len(dims)]) as var:
        _nest(ctx, shape, dims + [var], tile, store_at, columns_outer, vector, sum_block)


def _dot_blocks(ctx, shape, block: tuple[int, int], lanes: int, store_at) -> None:
    """The outputs of a product of dot products (graphc.ops.linalg.computes_dot_products) in
    blocks of ``block`` = (rows, columns), each output's sum in vectors of ``lanes`` terms: a
    block reads each of its rows of the left operand and of the (transposed) right one once
    per vector of terms.  Columns left over make a narrower last block."""
    rows, columns = block
    whole, rest = divmod(shape[1], columns)

    def one(first_row, first_column, width: int):
        with ctx.builder.dot_tiled(rows * width, lanes) as element:
            if element is None:
                store_at(_element(shape, [first_row, first_column]))
            else:
                store_at(_element(shape, [E.add(first_row, E.div(element, width)),
                                          E.add(first_column, E.rem(element, width))]))
    with ctx.builder.loop(0, shape[0] // rows) as row_block:
        first_row = E.mul(row_block, rows)
        if whole == 1:
            one(first_row, E.index(0), columns)
        elif whole > 1:
            with ctx.builder.loop(0, whole) as column_block:
                one(first_row, E.mul(column_block, columns), columns)
        if rest:
            one(first_row, E.index(whole * columns), rest)


# A right operand larger than this (a core's share of L2) is read once, column tile by column
# tile; a smaller one stays in cache while the tiles run row block by row block, which streams
# the output and the epilogue's operands (an optimizer's state) through memory in order.
RIGHT_OPERAND_CACHE_BYTES = 512 * 1024


def _columns_outer(anchor: Node, rows: int, lanes: int) -> bool:
    """Whether a matmul's tiles run column tile by column tile: its right operand spills out of
    cache (RIGHT_OPERAND_CACHE_BYTES) and its columns are whole tiles, several of them, beside
    several blocks of ``rows`` rows.  Then a last block of the rows left over runs in each column
    (where the tiles of the rows outermost take the largest row count that divides the rows)."""
    right = anchor.inputs[1].type
    m, n = anchor.shape[-2:]
    return (right.numel * right.dtype.itemsize > RIGHT_OPERAND_CACHE_BYTES and n % lanes == 0
            and n // lanes > 1 and m // rows > 1)


# A column tile's panel of the right operand (K x lanes) larger than this does not stay in L2
# while each block of rows reads it in turn: a product of few rows then runs one tall tile per
# column, its sum in blocks of terms whose panel does (_sum_block).
PANEL_CACHE_BYTES = 256 * 1024
# The most register blocks of rows a tall tile holds (its scratch tile, the accumulators
# the block of rows running does not hold, stays in L1).
MAX_TALL_BLOCKS = 4
# The terms of a tall tile's sum block: as many as keep its panel in L1 and its loop long
# enough that loading and storing the block's accumulators costs little.
SUM_BLOCK = 256


def _sum_block(anchor: Node, rows: int, lanes: int) -> int | None:
    """The terms a matmul's tall tiles sum at a time, or None where its tiles run block of rows by
    block of rows: a tall tile pays where each column's panel of the right operand spills L2
    (PANEL_CACHE_BYTES) and the rows take several register blocks, but not too many
    (MAX_TALL_BLOCKS).  A divisor of K near SUM_BLOCK where there is one, so no block is short."""
    m, k = anchor.inputs[0].shape[-2:]
    if k * lanes * anchor.dtype.itemsize <= PANEL_CACHE_BYTES or not 1 < -(-m // rows) <= MAX_TALL_BLOCKS:
        return None
    return next((d for d in range(SUM_BLOCK, SUM_BLOCK // 2, -1) if k % d == 0), SUM_BLOCK)


def _column_tiles(ctx, shape, dims, first_row, tile, vector: int, store_at) -> None:
    """The tiles of one block of rows (or of one row, ``first_row`` None): as many whole tiles
    of ``lanes`` columns as fit, then one narrower tile of the columns left over."""
    rows, lanes = tile
    full, rest = divmod(shape[-1], lanes)
    if full == 1:
        _tile(ctx, shape, dims, first_row, E.index(0), rows, lanes, vector, store_at)
    elif full > 1:
        with ctx.builder.loop(0, full) as column_tile:
            _tile(ctx, shape, dims, first_row, E.mul(column_tile, lanes), rows, lanes, vector, store_at)
    if rest:
        _tile(ctx, shape, dims, first_row, E.index(full * lanes), rows, rest, vector, store_at)


def _tile(ctx, shape, dims, first_row, first_column, rows: int, width: int, vector: int, store_at,
          register_rows: int | None = None, sum_block: int | None = None) -> None:
    """One tile: ``rows`` rows from ``first_row`` (None: the one row ``dims`` ends at) by ``width``
    columns from ``first_column``, in vectors of ``vector`` lanes (a tall tile: see Tile)."""
    with ctx.builder.tiled(rows, width, _padded_width(width, vector), register_rows, sum_block) as (row, lane):
        row_dims = [] if first_row is None else [first_row if row is None else E.add(first_row, row)]
        store_at(_element(shape, dims + row_dims + [E.add(first_column, lane)]))


def _padded_width(width: int, vector: int) -> int | None:
    """The lanes a tile's rows of ``width`` are computed in, where more than ``width`` take fewer
    vector instructions (Loop.padded_to), else None.  A backend splits a row into vectors of
    powers of two (28 lanes as 16 + 8 + 4: three AVX-512 instructions per operation); padded to
    whole vectors of ``vector`` lanes, it takes two."""
    padded = -(-width // vector) * vector
    pieces = sum(-(-(1 << bit) // vector) for bit in range(width.bit_length()) if width & (1 << bit))
    return padded if padded // vector < pieces else None


def _unpermuted(index: Index, order: tuple[int, ...]) -> Index:
    """The element of the anchor that loops over its axes in ``order`` are at (``index``)."""
    if order == tuple(range(len(order))):
        return index
    dims = [None] * len(order)
    for position, axis in enumerate(order):
        dims[axis] = index.dims[position]
    return _element(tuple(index.shape[order.index(axis)] for axis in range(len(order))), dims)


def _element(shape, dims) -> Index:
    """The element at ``dims``, its flat position kept for the values read at the same position."""
    index = Index.of(shape, dims)
    return Index(index.shape, index.dims, E.linear(index.dims, shape))


def _loop_axes(node: Node, shape) -> tuple[Node, tuple[tuple[int, ...], ...], list[Node]] | None:
    """The anchor whose elements a kernel's loops run over, split into the parts its op asks for
    (OpDef.loop_axes), and the reshapes and permutes taking them to the outputs; None unless the
    kernel has one anchor that asks, everything else elementwise or that movement."""
    body = _body_nodes(node)
    anchors = [n for n in body if get_op(n.op).family not in ("elementwise", "source", "movement")]
    if len(anchors) != 1 or get_op(anchors[0].op).loop_axes is None:
        return None
    (anchor,) = anchors
    path = _movement_path(node, anchor, tuple(shape))
    if path is None:
        return None
    return anchor, get_op(anchor.op).loop_axes(anchor), path


def _joined(index: Index, shape, split) -> Index:
    """The element of ``shape`` that the loops over the parts ``split`` are at (``index``, over
    the parts' sizes), each split coordinate's parts kept for Index.split."""
    dims, parts, loops = [], [], iter(index.dims)
    for axis, sizes in enumerate(split):
        coordinates = tuple(next(loops) for _ in sizes)
        dims.append(E.linear(coordinates, sizes))
        if len(sizes) > 1:
            parts.append((axis, tuple(sizes), coordinates))
    return Index(tuple(shape), tuple(dims), index.flat, tuple(parts))


def _moved(index: Index, path: list[Node]) -> Index:
    """Where the element at ``index`` lands after each reshape or permute of ``path``."""
    for step in path:
        if step.op == "reshape":
            index = _reshaped(index, step.shape)
        else:
            index = Index.of(step.shape, [index.dims[axis] for axis in step.attrs["dims"]])
    return index


def _reshaped(index: Index, shape) -> Index:
    """The element of a tensor of ``shape`` at the same flat position as ``index``.  Where ``shape``
    splits the last axis of ``index``'s (a matmul's [N, O, H*W] as [N, O, H, W]), the leading
    coordinates stay as they are, so values that vary along them alone (a per-channel scale)
    need no arithmetic per lane."""
    prefix = 0
    while prefix < min(len(shape), len(index.shape)) - 1 and shape[prefix] == index.shape[prefix]:
        prefix += 1
    if prefix == len(index.shape) - 1:
        dims = index.dims[:prefix] + E.unflatten(index.dims[prefix], shape[prefix:])
    else:
        dims = E.unflatten(index.linear(), shape)
    return Index(tuple(shape), tuple(dims), index.linear())


def _store_moved(ctx, node: Node, outputs, stored, anchor: Node, path: list[Node], index: Index) -> None:
    """Store the outputs at the anchor's element ``index``.  Where they are the anchor's elements
    moved along ``path`` (reshaped, transposed), this element's outputs read this element of the
    anchor, whatever index they name it by."""
    if not path:
        _store_outputs(ctx, outputs, stored, index)
        return
    ctx.inline(node.attrs["body"], node.inputs)
    with ctx.pinned(anchor, ctx.value(anchor, index)):
        _store_outputs(ctx, outputs, stored, _moved(index, path))


def _store_outputs(ctx, outputs, stored, index: Index) -> None:
    # Every output's value first, then the stores: an output written in place over an
    # operand must not clobber an element another output has yet to read.
    values = [ctx.value(output, index) for output in outputs]
    for buffer, value in zip(stored, values):
        store(ctx.builder, buffer, index, value)


def _body_nodes(node: Node) -> list[Node]:
    return node.attrs["body"].nodes if node.op == "fused" else [node]


def _is_flat(node: Node, shape) -> bool:
    numel = int(np.prod(shape, dtype=np.int64))
    reads_in_step = all(op.op == "reshape" or get_op(op.op).family in _FLAT_FAMILIES for op in _body_nodes(node))
    return reads_in_step and all(x.type.numel == numel or x.shape == () for x in node.inputs) and len(shape) > 0


# Anchors whose rows of outputs are computed lane by lane: the lanes read neighbouring
# elements (an image row, a matrix row), so a backend vectorizes across them.
_ROW_ANCHORS = ("conv2d", "conv_transpose2d", "avg_pool2d", "avg_pool2d_grad", "max_pool2d", "max_pool2d_argmax",
                "max_pool2d_grad", "matmul", "fold")
MAX_ROW = 64


def _row_length(size: int) -> int | None:
    """The length of the rows a last axis of ``size`` is computed in: all of it up to MAX_ROW,
    else its largest divisor of at least 8 up to MAX_ROW (None if it has none)."""
    if size <= MAX_ROW:
        return size
    return next((row for row in range(MAX_ROW, 7, -1) if size % row == 0), None)


@dataclass(frozen=True)
class Tiling:
    """How a kernel's outputs are computed in tiles of ``tile`` = (rows, lanes): its loops run over
    the elements of ``anchor``, its axes in ``order`` (the tiles' rows along the second last of
    them, their lanes along the last), and ``path`` (reshapes and transposes) takes each element
    to the outputs."""
    anchor: Node
    tile: tuple[int, int]
    path: list[Node]
    order: tuple[int, ...]
    dot_products: bool = False        # tile: (rows, columns) of outputs, each a sum in vectors
    columns_outer: bool = False       # a matmul's column tiles outermost (_columns_outer)
    sum_block: int | None = None      # a tall tile per column, its sum in blocks of terms (_sum_block)


def _tiling(node: Node, shape, target: VectorTarget) -> Tiling | None:
    """How a kernel's outputs are computed in tiles, or None (the outputs one by one).

    A matmul's output goes in register tiles of ``target``'s shape (fewer rows where that many
    do not divide the row count, unless the tiles run column by column: then the rows left over
    are a block of their own), also when the kernel stores it reshaped (a convolution's
    [N, O, H*W] product as [N, O, H, W]) or transposed.  A conv2d's too, its output channels as
    the rows and an output row as the lanes: each input value loaded serves every channel of
    the tile.  A product of dot products (few rows by a transposed right operand) goes in
    blocks of outputs, each a sum in vectors (``_dot_blocks``).  Other window ops' outputs go in
    rows of whole image rows.  A kernel with no elements to compute or none to read (a batch of
    none) has no tiles: its loops run no iteration, and a sum over no terms is its start."""
    anchors = [n for n in _body_nodes(node) if get_op(n.op).family in ("reduction", "contraction", "window")]
    if 0 in shape or any(0 in anchor.shape or any(0 in x.shape for x in anchor.inputs) for anchor in anchors):
        return None
    if len(anchors) == 1 and anchors[0].op == "matmul" and _reads_dot_products(node, anchors[0]):
        (anchor,) = anchors
        path = _movement_path(node, anchor, tuple(shape))
        if path is not None:
            return Tiling(anchor, _dot_block(anchor, target), path, (0, 1), dot_products=True)
    if not shape or shape[-1] < 2:
        return None
    if len(anchors) == 1 and anchors[0].op in ("matmul", "conv2d") and anchors[0].shape[-1] > 1:
        (anchor,) = anchors
        path = _movement_path(node, anchor, tuple(shape))
        if path is not None and anchor.op == "matmul":
            most_rows, lanes = target.tile(anchor.dtype)
            if _columns_outer(anchor, most_rows, lanes):
                return Tiling(anchor, (most_rows, lanes), path, tuple(range(anchor.type.rank)), columns_outer=True,
                              sum_block=_sum_block(anchor, most_rows, lanes))
            rows = _largest_divisor(anchor.shape[-2], most_rows)
            return Tiling(anchor, (rows, lanes), path, tuple(range(anchor.type.rank)))
        if path is not None and (width := _row_length(anchor.shape[-1])) is not None:
            rows = _largest_divisor(anchor.shape[1], target.rows_of(width, anchor.dtype))
            return Tiling(anchor, (rows, width), path, (0, 2, 1, 3))
    if not anchors or any(n.op not in _ROW_ANCHORS or n.shape != anchors[0].shape for n in anchors):
        return None
    # Several anchors (a pooling's maximum and tap) are stored as they are; one may be reshaped.
    path = [] if anchors[0].shape == tuple(shape) else \
        _movement_path(node, anchors[0], tuple(shape)) if len(anchors) == 1 else None
    row = _row_length(anchors[0].shape[-1])
    if row is None or path is None:
        return None
    return Tiling(anchors[0], (1, row), path, tuple(range(anchors[0].type.rank)))


def _reads_dot_products(node: Node, anchor: Node) -> bool:
    """Whether a matmul computes dot products (graphc.ops.linalg) whose right operand the kernel
    reads along K: a transpose it reads as a view (not one stored transposed), or one column."""
    rhs = anchor.inputs[1]
    return computes_dot_products(anchor) and (anchor.shape[1] == 1 or rhs in _body_nodes(node))


# The most rows of the left operand a block of dot products reads side by side, each a stream
# through memory: beyond about this many the hardware prefetchers lose track.  32x6272x1 (800 KB
# from L2) runs in 4.9 us in blocks of 8 rows, 6.0 in blocks of 16, 7.1 in 32 on a Zen core.
DOT_STREAMS = 8


def _dot_block(anchor: Node, target: VectorTarget) -> tuple[int, int]:
    """The (rows, columns) of a block of dot products: as many outputs (a vector of partial sums
    each) as the registers hold beside a vector of each row of the left operand and one of the
    right, the rows a divisor of the product's and at most DOT_STREAMS."""
    m, n = anchor.shape
    rows = _largest_divisor(m, min(target.registers // 2, DOT_STREAMS))
    return rows, max(1, min(n, (target.registers - rows - 2) // rows))


def _largest_divisor(count: int, most: int) -> int:
    """The most rows, up to ``most``, that blocks of ``count`` rows divide into evenly."""
    return max(r for r in range(1, min(count, most) + 1) if count % r == 0)


def _movement_path(node: Node, anchor: Node, shape) -> list[Node] | None:
    """The reshapes and permutes that take ``anchor``'s elements to the kernel's
    outputs of ``shape``, with elementwise ops (each keeping the shape it reads) before, between
    and after them; [] when the outputs are of the anchor's shape, None when no such path leads
    there.  Each movement must be a cut of what depends on the anchor (all of it before or after
    the move), so every output element reads one anchor element, wherever the path branches."""
    if anchor.shape == shape:
        return []
    if node.op != "fused":
        return None
    body = node.attrs["body"]
    downstream = _downstream(body, anchor)
    moves = [n for n in downstream if n.op in ("reshape", "permute")]
    if not moves or moves[-1].shape != tuple(shape):
        return None
    for n in downstream:
        if n.op in ("reshape", "permute"):
            continue
        if get_op(n.op).family != "elementwise" or any(x.shape != n.shape for x in n.inputs if x in downstream):
            return None
    for move in moves:
        after = _downstream(body, move)
        if any(n is not move and n not in after and move not in _downstream(body, n) for n in downstream):
            return None
    return moves


def _downstream(body, start: Node) -> dict[Node, None]:
    """The nodes of ``body`` that read ``start``, directly or not (``start`` excluded), in order."""
    reached, found = {start}, {}
    for n in body.nodes:
        if any(x in reached for x in n.inputs):
            reached.add(n)
            found[n] = None
    return found


def _describe(node: Node) -> str:
    if node.op != "fused":
        return node.op
    ops = dict.fromkeys(n.op for n in node.attrs["body"].nodes if n.op != "full")
    return f"{node.attrs['kind']}: {' '.join(ops)}"
