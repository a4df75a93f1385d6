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

import numpy as np

from ..errors import GraphcError
from ..ir.graph import Graph, Node
from ..ops.fused import kernel_outputs
from ..ops.registry import get_op
from ..timing import phase
from . import expr as E
from .builder import Index, KernelBuilder, LoweringContext, store
from .ir import Buffer, Copy, Kernel, OutOfRange, Program
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
        kernel = _lower_kernel(f"k{len(kernels)}_{_identifier(node.name)}", node, outputs, operands,
                               [o.name for o in outputs], errors, target)
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
    else:
        _nest(ctx, outputs, stored, shape, [], _tile_shape(node, shape, target))
    inputs = tuple(dict.fromkeys(b for b in operands.values() if b is not None))
    return Kernel(name, node.name, _describe(node), builder.body, inputs, tuple(stored),
                  str(node.loc) if node.loc else None)


def _nest(ctx, outputs, stored, shape, dims, tile: tuple[int, int] | None):
    """Loops over the outputs' elements; with a ``tile`` (rows, lanes), the last axis (and the
    one before it, where rows > 1) in tiles computed lane by lane."""
    if len(dims) == len(shape):
        _store_outputs(ctx, outputs, stored, Index.of(shape, dims))
        return
    if tile is not None and tile[0] > 1 and len(dims) == len(shape) - 2:
        rows = tile[0]
        with ctx.builder.loop(0, shape[-2] // rows) as block:
            _column_tiles(ctx, outputs, stored, shape, dims, E.mul(block, rows), tile)
        return
    if tile is not None and tile[0] == 1 and len(dims) == len(shape) - 1:
        _column_tiles(ctx, outputs, stored, shape, dims, None, tile)
        return
    with ctx.builder.loop(0, shape[len(dims)]) as var:
        _nest(ctx, outputs, stored, shape, dims + [var], tile)


def _column_tiles(ctx, outputs, stored, shape, dims, first_row, tile) -> None:
    """The tiles of one block of rows (or of one row, ``first_row`` None): as many whole tiles
    of ``lanes`` columns as fit, then one narrower tile of the columns left over."""
    rows, lanes = tile
    full, rest = divmod(shape[-1], lanes)

    def compute(first_column, width):
        with ctx.builder.tiled(rows, width) as (row, lane):
            row_dims = [] if first_row is None else [E.add(first_row, row) if row is not None else first_row]
            _store_outputs(ctx, outputs, stored, Index.of(shape, dims + row_dims + [E.add(first_column, lane)]))

    if full == 1:
        compute(E.index(0), lanes)
    elif full > 1:
        with ctx.builder.loop(0, full) as column_tile:
            compute(E.mul(column_tile, lanes), lanes)
    if rest:
        compute(E.index(full * lanes), rest)


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
_ROW_ANCHORS = ("conv2d", "conv_transpose2d", "avg_pool2d", "avg_pool2d_grad", "max_pool2d_grad", "matmul")
MAX_ROW = 64


def _row_length(size: int) -> int | None:
    """The length of the rows a last axis of ``size`` is computed in: all of it up to MAX_ROW,
    else its largest divisor of at least 8 up to MAX_ROW (None if it has none)."""
    if size <= MAX_ROW:
        return size
    return next((row for row in range(MAX_ROW, 7, -1) if size % row == 0), None)


def _tile_shape(node: Node, shape, target: VectorTarget) -> tuple[int, int] | None:
    """The (rows, lanes) of the tiles a kernel's outputs are computed in, or None (one by one).

    A matmul's output goes in register tiles of ``target``'s shape (fewer rows where that
    many do not divide the row count); a window op's in rows of whole image rows."""
    if not shape or shape[-1] < 2:
        return None
    anchors = [n for n in _body_nodes(node) if get_op(n.op).family in ("reduction", "contraction", "window")]
    if not anchors or any(n.op not in _ROW_ANCHORS or n.shape != tuple(shape) for n in anchors):
        return None
    if all(n.op == "matmul" for n in anchors):
        # A matmul's lanes are columns of its right operand: read through a permute they are far apart.
        if any(n.inputs[1].op == "permute" for n in anchors):
            return None
        most_rows, lanes = target.tile(anchors[0].dtype)
        rows = max(r for r in range(1, most_rows + 1) if shape[-2] % r == 0)
        return rows, lanes
    row = _row_length(shape[-1])
    return None if row is None else (1, row)


def _describe(node: Node) -> str:
    if node.op != "fused":
        return node.op
    ops = dict.fromkeys(n.op for n in node.attrs["body"].nodes if n.op != "full")
    return f"{node.attrs['kind']}: {' '.join(ops)}"
