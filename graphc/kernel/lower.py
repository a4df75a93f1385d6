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
from . import expr as E
from .builder import Index, KernelBuilder, LoweringContext, store
from .ir import Buffer, Copy, Kernel, OutOfRange, Program
from .schedule import default_schedule

# Ops whose kernels can loop over the flat position of their elements: each reads its
# operands at the element it writes (or at a scalar), so no coordinates are needed.
_FLAT_FAMILIES = ("elementwise", "source")


def lower_program(graph: Graph, plan, schedule: bool = True) -> Program:
    """The kernel-IR program running ``graph`` with the buffers placed by ``plan`` (a MemoryPlan),
    each kernel given its default schedule (unless ``schedule`` is false)."""
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
                               [o.name for o in outputs], errors)
        kernels.append(default_schedule(kernel) if schedule else kernel)
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
                  stored: list[str], errors: list[OutOfRange]) -> Kernel:
    builder = KernelBuilder()
    ctx = LoweringContext(builder, {n: b for n, b in operands.items() if b is not None}, errors,
                          lambda n: get_op(n.op).lower)
    shape = outputs[0].shape
    if _is_flat(node, shape):
        with builder.loop(0, int(np.prod(shape, dtype=np.int64))) as position:
            _store_outputs(ctx, outputs, stored, Index.flat_over(shape, position))
    else:
        _nest(ctx, outputs, stored, shape, [], _by_lanes(node, shape))
    inputs = tuple(dict.fromkeys(b for b in operands.values() if b is not None))
    return Kernel(name, node.name, _describe(node), builder.body, inputs, tuple(stored),
                  str(node.loc) if node.loc else None)


def _nest(ctx, outputs, stored, shape, dims, by_lanes: bool = False):
    if len(dims) == len(shape):
        _store_outputs(ctx, outputs, stored, Index.of(shape, dims))
        return
    if by_lanes and len(dims) == len(shape) - 1:
        row = _row_length(shape[-1])
        if row == shape[-1]:
            with ctx.builder.lanes(row) as lane:
                _store_outputs(ctx, outputs, stored, Index.of(shape, dims + [lane]))
            return
        with ctx.builder.loop(0, shape[-1] // row) as tile, ctx.builder.lanes(row) as lane:
            _store_outputs(ctx, outputs, stored, Index.of(shape, dims + [E.add(E.mul(tile, row), lane)]))
        return
    with ctx.builder.loop(0, shape[len(dims)]) as var:
        _nest(ctx, outputs, stored, shape, dims + [var], by_lanes)


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


def _by_lanes(node: Node, shape) -> bool:
    if not shape or shape[-1] < 2 or _row_length(shape[-1]) is None:
        return False
    anchors = [n for n in _body_nodes(node) if get_op(n.op).family in ("reduction", "contraction", "window")]
    if not anchors or any(n.op not in _ROW_ANCHORS or n.shape != tuple(shape) for n in anchors):
        return False
    # A matmul's lanes are columns of its right operand: read through a permute they are far apart.
    return not any(n.op == "matmul" and n.inputs[1].op == "permute" for n in anchors)


def _describe(node: Node) -> str:
    if node.op != "fused":
        return node.op
    ops = dict.fromkeys(n.op for n in node.attrs["body"].nodes if n.op != "full")
    return f"{node.attrs['kind']}: {' '.join(ops)}"
